package cloudtrail

import (
	"crypto"
	"crypto/md5"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// Digest is a CloudTrail digest file: an hourly, signed list of the log
// files a trail delivered for one region, chained to the previous digest.
// Its own signature is not in the body but in the S3 object's metadata
// (x-amz-meta-signature, hex).
type Digest struct {
	AWSAccountID                string          `json:"awsAccountId"`
	DigestStartTime             string          `json:"digestStartTime"`
	DigestEndTime               string          `json:"digestEndTime"`
	DigestS3Bucket              string          `json:"digestS3Bucket"`
	DigestS3Object              string          `json:"digestS3Object"`
	DigestPublicKeyFingerprint  string          `json:"digestPublicKeyFingerprint"`
	DigestSignatureAlgorithm    string          `json:"digestSignatureAlgorithm"`
	PreviousDigestS3Bucket      *string         `json:"previousDigestS3Bucket"`
	PreviousDigestS3Object      *string         `json:"previousDigestS3Object"`
	PreviousDigestHashValue     *string         `json:"previousDigestHashValue"`
	PreviousDigestHashAlgorithm *string         `json:"previousDigestHashAlgorithm"`
	PreviousDigestSignature     *string         `json:"previousDigestSignature"`
	LogFiles                    []DigestLogFile `json:"logFiles"`

	raw       []byte
	signature string
}

// DigestLogFile is one log file a digest lists.
type DigestLogFile struct {
	S3Bucket      string `json:"s3Bucket"`
	S3Object      string `json:"s3Object"`
	HashValue     string `json:"hashValue"`
	HashAlgorithm string `json:"hashAlgorithm"`
}

// Errors of digest validation.
var (
	ErrDigestSignature = errors.New("digest signature does not verify")
	ErrDigestMoved     = errors.New("digest is not at the location it names")
	ErrDigestChain     = errors.New("digest does not chain to the previous one")
	ErrLogFileHash     = errors.New("log file does not match its digest")
	ErrUnknownKey      = errors.New("digest signed by an unknown key")
)

// PublicKeys are CloudTrail's digest signing keys by fingerprint, as
// ListPublicKeys returns them (DER).
type PublicKeys map[string]*rsa.PublicKey

// AddPublicKey parses a DER key (PKCS#1 or SubjectPublicKeyInfo) and files
// it under its fingerprint, hex(MD5(DER)).
func (k PublicKeys) AddPublicKey(der []byte) (string, error) {
	var pub *rsa.PublicKey
	if p, err := x509.ParsePKCS1PublicKey(der); err == nil {
		pub = p
	} else if p, err := x509.ParsePKIXPublicKey(der); err == nil {
		rp, ok := p.(*rsa.PublicKey)
		if !ok {
			return "", fmt.Errorf("digest key is %T, not RSA", p)
		}
		pub = rp
	} else {
		return "", fmt.Errorf("digest key is neither PKCS#1 nor PKIX: %w", err)
	}
	sum := md5.Sum(der)
	fp := hex.EncodeToString(sum[:])
	k[fp] = pub
	return fp, nil
}

// VerifyDigest checks one digest file: raw is the inflated file, bucket and
// key where it was read, signatureHex its x-amz-meta-signature. It checks
// that the digest names the place it was read from (not moved) and the
// SHA256withRSA signature over
//
//	digestEndTime \n bucket/key \n hex(sha256(raw)) \n previousDigestSignature
//
// where a starting digest's missing previous signature is "null".
func VerifyDigest(raw []byte, bucket, key, signatureHex string, keys PublicKeys) (*Digest, error) {
	var d Digest
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("digest s3://%s/%s is not JSON: %w", bucket, key, err)
	}
	d.raw, d.signature = raw, signatureHex
	if d.DigestS3Bucket != bucket || d.DigestS3Object != key {
		return &d, fmt.Errorf("%w: read from s3://%s/%s, names s3://%s/%s", ErrDigestMoved, bucket, key, d.DigestS3Bucket, d.DigestS3Object)
	}
	if d.DigestSignatureAlgorithm != "SHA256withRSA" {
		return &d, fmt.Errorf("%w: algorithm %q", ErrDigestSignature, d.DigestSignatureAlgorithm)
	}
	pub := keys[d.DigestPublicKeyFingerprint]
	if pub == nil {
		return &d, fmt.Errorf("%w: %s", ErrUnknownKey, d.DigestPublicKeyFingerprint)
	}
	sig, err := hex.DecodeString(signatureHex)
	if err != nil {
		return &d, fmt.Errorf("%w: signature is not hex", ErrDigestSignature)
	}
	sum := sha256.Sum256(d.signingString())
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return &d, fmt.Errorf("%w: s3://%s/%s", ErrDigestSignature, bucket, key)
	}
	return &d, nil
}

func (d *Digest) signingString() []byte {
	prev := "null" // as the Java implementation writes a null signature
	if d.PreviousDigestSignature != nil {
		prev = *d.PreviousDigestSignature
	}
	h := sha256.Sum256(d.raw)
	return []byte(d.DigestEndTime + "\n" + d.DigestS3Bucket + "/" + d.DigestS3Object + "\n" + hex.EncodeToString(h[:]) + "\n" + prev)
}

// Starting reports whether d begins a chain (logging or validation was
// (re)started): it has no previous digest.
func (d *Digest) Starting() bool { return d.PreviousDigestSignature == nil }

// VerifyPrevious checks that d chains to prev: d names prev's location,
// the SHA-256 of prev's inflated bytes and prev's signature.
func (d *Digest) VerifyPrevious(prev *Digest) error {
	if d.Starting() {
		return fmt.Errorf("%w: %s starts a new chain", ErrDigestChain, d.DigestS3Object)
	}
	h := sha256.Sum256(prev.raw)
	switch {
	case deref(d.PreviousDigestS3Bucket) != prev.DigestS3Bucket || deref(d.PreviousDigestS3Object) != prev.DigestS3Object:
		return fmt.Errorf("%w: %s names %s as previous, not %s", ErrDigestChain, d.DigestS3Object, deref(d.PreviousDigestS3Object), prev.DigestS3Object)
	case deref(d.PreviousDigestHashValue) != hex.EncodeToString(h[:]):
		return fmt.Errorf("%w: previous digest %s was altered", ErrDigestChain, prev.DigestS3Object)
	case deref(d.PreviousDigestSignature) != prev.signature:
		return fmt.Errorf("%w: previous signature of %s differs", ErrDigestChain, d.DigestS3Object)
	}
	return nil
}

// VerifyLogFile checks an inflated log file against the hash d lists for
// it.
func (d *Digest) VerifyLogFile(bucket, key string, inflated []byte) error {
	for _, f := range d.LogFiles {
		if f.S3Bucket == bucket && f.S3Object == key {
			h := sha256.Sum256(inflated)
			if f.HashValue != hex.EncodeToString(h[:]) {
				return fmt.Errorf("%w: s3://%s/%s", ErrLogFileHash, bucket, key)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: s3://%s/%s is not listed in %s", ErrLogFileHash, bucket, key, d.DigestS3Object)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
