// Package cloudtrail collects IAM, IAM Identity Center (sso,
// identitystore, SCIM, the console directory) and Organizations policy
// changes from AWS CloudTrail, in one of two modes:
//
//   - lookup: the LookupEvents API per account and region (IAM and STS log
//     to us-east-1), in closed windows that settle 15 minutes, overlap the
//     previous one and are re-scanned for late arrivals; the API's newest-
//     first pages are all read before the cursor moves, paced at the
//     documented 2 requests a second per region.
//   - sqs: trail log files in S3 announced through SQS (CloudTrail's SNS
//     notification or S3 event notifications), gzip JSON {"Records": [...]};
//     a message is deleted only after its files' records were emitted, and
//     the files are noted in the state directory first, so a crash before
//     the records are spooled re-reads them.
//
// Both de-duplicate on eventID. Credentials come from the AWS SDK's
// default chain (environment, shared files and profile, web identity token
// file, container and instance roles), optionally assuming role_arn.
// aws-sdk-go-v2 is used rather than hand-written SigV4: it is light (about
// 8 MB for CloudTrail, S3 and SQS together) and its standard retryer already
// knows CloudTrail's HTTP 400 ThrottlingException.
//
// With validate_digests (sqs mode), CloudTrail's own integrity chain is
// checked as its hourly digest files are announced: the digest's
// SHA256withRSA signature (keys from ListPublicKeys, by MD5 fingerprint),
// its link to the previous digest, and every log file it lists against
// the SHA-256 of what was read. A listed file the queue never announced is
// read then, so digests also close gaps in the notifications; a mismatch
// is reported as a problem and logged at error level.
package cloudtrail
