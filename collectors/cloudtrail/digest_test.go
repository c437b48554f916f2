package cloudtrail

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// signer builds a digest chain the way CloudTrail does.
type signer struct {
	key *rsa.PrivateKey
	fp  string
}

func (s *signer) digest(t *testing.T, hour int, prev *Digest, logs map[string][]byte) (raw []byte, key, sig string) {
	t.Helper()
	key = fmt.Sprintf("AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_trail_us-east-2_20150817T%02d0131Z.json.gz", hour)
	d := map[string]any{
		"awsAccountId": "111122223333", "digestStartTime": fmt.Sprintf("2015-08-17T%02d:01:31Z", hour-1),
		"digestEndTime": fmt.Sprintf("2015-08-17T%02d:01:31Z", hour), "digestS3Bucket": "S3-bucket-name", "digestS3Object": key,
		"digestPublicKeyFingerprint": s.fp, "digestSignatureAlgorithm": "SHA256withRSA",
		"previousDigestS3Bucket": nil, "previousDigestS3Object": nil, "previousDigestHashValue": nil,
		"previousDigestHashAlgorithm": nil, "previousDigestSignature": nil, "logFiles": []any{},
	}
	prevSig := "null"
	if prev != nil {
		h := sha256.Sum256(prev.raw)
		d["previousDigestS3Bucket"], d["previousDigestS3Object"] = prev.DigestS3Bucket, prev.DigestS3Object
		d["previousDigestHashValue"], d["previousDigestHashAlgorithm"] = hex.EncodeToString(h[:]), "SHA-256"
		d["previousDigestSignature"] = prev.signature
		prevSig = prev.signature
	}
	var files []any
	for k, b := range logs {
		h := sha256.Sum256(b)
		files = append(files, map[string]any{"s3Bucket": "S3-bucket-name", "s3Object": k, "hashValue": hex.EncodeToString(h[:]), "hashAlgorithm": "SHA-256"})
	}
	if files != nil {
		d["logFiles"] = files
	}
	raw, _ = json.Marshal(d)
	h := sha256.Sum256(raw)
	signing := d["digestEndTime"].(string) + "\nS3-bucket-name/" + key + "\n" + hex.EncodeToString(h[:]) + "\n" + prevSig
	sum := sha256.Sum256([]byte(signing))
	s2, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return raw, key, hex.EncodeToString(s2)
}

func TestDigestChain(t *testing.T) {
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	keys := PublicKeys{}
	fp, err := keys.AddPublicKey(x509.MarshalPKCS1PublicKey(&priv.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	s := &signer{key: priv, fp: fp}
	logFile := []byte(`{"Records":[]}`)
	logKey := "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/f.json.gz"

	raw1, key1, sig1 := s.digest(t, 14, nil, nil)
	d1, err := VerifyDigest(raw1, "S3-bucket-name", key1, sig1, keys)
	if err != nil || !d1.Starting() {
		t.Fatalf("starting digest: %v", err)
	}
	raw2, key2, sig2 := s.digest(t, 15, d1, map[string][]byte{logKey: logFile})
	d2, err := VerifyDigest(raw2, "S3-bucket-name", key2, sig2, keys)
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.VerifyPrevious(d1); err != nil {
		t.Fatal(err)
	}
	if err := d2.VerifyLogFile("S3-bucket-name", logKey, logFile); err != nil {
		t.Fatal(err)
	}

	// Tampering, each caught with its own error.
	if err := d2.VerifyLogFile("S3-bucket-name", logKey, []byte(`{"Records":[{}]}`)); !errors.Is(err, ErrLogFileHash) {
		t.Errorf("altered log file: %v", err)
	}
	if _, err := VerifyDigest([]byte(strings.Replace(string(raw2), "S3-bucket-name", "S3-bucket-nam3", 1)), "S3-bucket-name", key2, sig2, keys); !errors.Is(err, ErrDigestMoved) {
		t.Errorf("moved digest: %v", err)
	}
	tampered := strings.Replace(string(raw2), `"logFiles":[`, `"logFiles":[{"s3Bucket":"x","s3Object":"y","hashValue":"00"},`, 1)
	if _, err := VerifyDigest([]byte(tampered), "S3-bucket-name", key2, sig2, keys); !errors.Is(err, ErrDigestSignature) {
		t.Errorf("altered digest: %v", err)
	}
	d1.raw = append([]byte(nil), d1.raw...)
	d1.raw[10] ^= 1
	if err := d2.VerifyPrevious(d1); !errors.Is(err, ErrDigestChain) {
		t.Errorf("altered previous: %v", err)
	}
	if _, err := VerifyDigest(raw1, "S3-bucket-name", key1, sig1, PublicKeys{}); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown key: %v", err)
	}
}

// TestDocSampleDigest parses the AWS documentation's sample digest and
// checks that its key fingerprint is unknown to an empty key set (its
// signature is in S3 metadata that the sample does not have).
func TestDocSampleDigest(t *testing.T) {
	raw, err := os.ReadFile("testdata/other/aws-cloudtrail-digest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	delete(m, "_source")
	raw, _ = json.Marshal(m)
	d, err := VerifyDigest(raw, "S3-bucket-name", m["digestS3Object"].(string), "00", PublicKeys{})
	if !errors.Is(err, ErrUnknownKey) || d.Starting() || len(d.LogFiles) != 1 || d.DigestPublicKeyFingerprint != "31e8b5433410dfb61a9dc45cc65b22ff" {
		t.Fatalf("%v %+v", err, d)
	}
}
