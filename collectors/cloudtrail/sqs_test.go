package cloudtrail

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/windowtest"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

type fakeMessage struct {
	id, body  string
	files     []string
	visibleAt time.Time
	receipt   int
	deleted   bool
}

// fakeSQSS3 speaks SQS (AWS JSON 1.0: ReceiveMessage, DeleteMessage,
// visibility timeout and redelivery) and S3 GetObject (path style, the
// gzip bytes served without Content-Encoding, as S3 does).
type fakeSQSS3 struct {
	t       *testing.T
	clock   *windowtest.Clock
	srv     *httptest.Server
	objects map[string][]byte
	// expected provisioning event ids per file, checked when a message is
	// deleted: they must all have been emitted by then.
	want map[string][]string
	sink *windowtest.Sink

	signatures map[string]string // digest object -> hex signature metadata
	publicKeys map[string][]byte // fingerprint -> DER

	mu          sync.Mutex
	msgs        []*fakeMessage
	failDelete  int
	deletes     int
	earlyDelete []string
}

func (f *fakeSQSS3) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDTESTEXAMPLE/") {
		w.WriteHeader(403)
		return
	}
	if target := r.Header.Get("X-Amz-Target"); target == "CloudTrail_20131101.ListPublicKeys" {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		var keys []any
		for fp, der := range f.publicKeys {
			keys = append(keys, map[string]any{"Value": base64.StdEncoding.EncodeToString(der), "Fingerprint": fp,
				"ValidityStartTime": 1.4e9, "ValidityEndTime": 2e9})
		}
		json.NewEncoder(w).Encode(map[string]any{"PublicKeyList": keys})
		return
	} else if target != "" {
		f.serveSQS(w, r, target)
		return
	}
	if r.Method != "GET" {
		w.WriteHeader(405)
		return
	}
	key := strings.TrimPrefix(r.URL.Path, "/")
	b, ok := f.objects[key]
	if !ok {
		w.WriteHeader(404)
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>`)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if sig, ok := f.signatures[key]; ok {
		w.Header().Set("x-amz-meta-signature", sig)
		w.Header().Set("x-amz-meta-signature-algorithm", "SHA256withRSA")
	}
	w.Write(b)
}

func (f *fakeSQSS3) serveSQS(w http.ResponseWriter, r *http.Request, target string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	body, _ := io.ReadAll(r.Body)
	var in map[string]any
	json.Unmarshal(body, &in)
	now := f.clock.Now()
	switch target {
	case "AmazonSQS.ReceiveMessage":
		vis := time.Duration(in["VisibilityTimeout"].(float64)) * time.Second
		var out []map[string]any
		for _, m := range f.msgs {
			if m.deleted || m.visibleAt.After(now) || len(out) == 10 {
				continue
			}
			m.visibleAt = now.Add(vis)
			m.receipt++
			sum := md5.Sum([]byte(m.body))
			out = append(out, map[string]any{"MessageId": m.id, "ReceiptHandle": fmt.Sprintf("%s#%d", m.id, m.receipt),
				"MD5OfBody": hex.EncodeToString(sum[:]), "Body": m.body})
		}
		json.NewEncoder(w).Encode(map[string]any{"Messages": out})
	case "AmazonSQS.DeleteMessage":
		f.deletes++
		if f.failDelete > 0 {
			f.failDelete--
			w.WriteHeader(500)
			fmt.Fprint(w, `{"__type":"InternalError","message":"try again"}`)
			return
		}
		id, _, _ := strings.Cut(in["ReceiptHandle"].(string), "#")
		emitted := map[string]bool{}
		for _, s := range f.sink.SourceIDs() {
			emitted[s] = true
		}
		for _, m := range f.msgs {
			if m.id != id {
				continue
			}
			m.deleted = true
			for _, file := range m.files {
				for _, ev := range f.want[file] {
					if !emitted[ev] {
						f.earlyDelete = append(f.earlyDelete, ev)
					}
				}
			}
		}
		fmt.Fprint(w, `{}`)
	default:
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"__type":"InvalidAction","message":%q}`, target)
	}
}

func gz(t *testing.T, v any) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	json.NewEncoder(zw).Encode(v)
	zw.Close()
	return buf.Bytes()
}

func TestSQSMode(t *testing.T) {
	awsTestEnv(t)
	clock := windowtest.NewClock(t0)
	sink := &windowtest.Sink{}
	f := &fakeSQSS3{t: t, clock: clock, objects: map[string][]byte{}, want: map[string][]string{}, sink: sink}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	defer f.srv.Close()

	var want []string
	n := 0
	file := func(i int) string {
		key := fmt.Sprintf("AWSLogs/123456789012/CloudTrail/us-east-1/2026/06/01/123456789012_CloudTrail_us-east-1_20260601T%02d00Z_abc%d.json.gz", i, i)
		var recs []any
		for j := range 9 {
			it := trailRecord(n, "us-east-1", t0.Add(time.Duration(n)*time.Minute), t0)
			n++
			recs = append(recs, it.Payload)
			_ = j
			if (n-1)%5 != 4 {
				want = append(want, it.ID)
				f.want["trail-bucket/"+key] = append(f.want["trail-bucket/"+key], it.ID)
			}
		}
		f.objects["trail-bucket/"+key] = gz(t, map[string]any{"Records": recs})
		return key
	}
	sample, err := os.ReadFile("testdata/other/aws-cloudtrail-sns-notification.json")
	if err != nil {
		t.Fatal(err)
	}
	var sns map[string]any
	json.Unmarshal(sample, &sns)
	k1 := file(1)
	sns["s3ObjectKey"] = []string{k1, strings.Replace(k1, "/CloudTrail/", "/CloudTrail-Digest/", 1)}
	inner, _ := json.Marshal(sns)
	envelope, _ := json.Marshal(map[string]any{"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:123456789012:trail", "Message": string(inner)})
	k2, k3 := file(2), file(3)
	rawNote, _ := json.Marshal(map[string]any{"s3Bucket": "trail-bucket", "s3ObjectKey": []string{k2, k3}})
	k4 := file(4)
	s3Event, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{"eventName": "ObjectCreated:Put",
		"s3": map[string]any{"bucket": map[string]any{"name": "trail-bucket"}, "object": map[string]any{"key": url.QueryEscape(k4)}}}}})
	f.msgs = []*fakeMessage{
		{id: "m1", body: string(envelope), files: []string{"trail-bucket/" + k1}},
		{id: "m2", body: string(rawNote), files: []string{"trail-bucket/" + k2, "trail-bucket/" + k3}},
		{id: "m3", body: `{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"trail-bucket"}`},
		{id: "m4", body: string(s3Event), files: []string{"trail-bucket/" + k4}},
		{id: "m5", body: `this is not json`},
	}
	// m1's delete fails once: it is delivered again and de-duplicated.
	f.failDelete = 1

	src := fmt.Sprintf(`
mode = "sqs"
queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/trail"
sqs_endpoint_url = %q
s3_endpoint_url = %q
visibility_timeout = "60s"
`, f.srv.URL, f.srv.URL)
	cfg := windowtest.Decode(t, src, DecodeConfig)
	dir := t.TempDir()
	var pc collectors.ProblemCounter
	sink.CrashAfter = 10 // inside m2's second file
	crashes := windowtest.Restarts(t, clock, sink, func() time.Time { return clock.Now().Add(10 * time.Minute) }, func() (collectors.Collector, error) {
		return New(collectors.Settings{Type: Type, Name: "org", StateDir: dir, Problems: &pc}, cfg,
			Options{Clock: clock, HTTPClient: f.srv.Client(), Backoff: retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })})
	}, nil)
	if crashes != 1 {
		t.Fatalf("%d crashes", crashes)
	}
	if err := windowtest.ExactlyOnce(sink.SourceIDs(), want); err != nil {
		t.Fatal(err)
	}
	if len(f.earlyDelete) > 0 {
		t.Fatalf("messages deleted before their events were emitted: %v", f.earlyDelete)
	}
	for _, m := range f.msgs {
		if m.deleted != (m.id != "m5") {
			t.Errorf("message %s deleted=%v", m.id, m.deleted)
		}
	}
	if pc.Count() == 0 {
		t.Error("the malformed message was not reported")
	}
	if sink.Records[0].Event.Source.File == "" || !strings.HasPrefix(sink.Records[0].Event.Source.File, "s3://trail-bucket/AWSLogs/") {
		t.Errorf("source file %q", sink.Records[0].Event.Source.File)
	}
}

func TestParseNotification(t *testing.T) {
	b, _ := os.ReadFile("testdata/other/aws-cloudtrail-sns-notification.json")
	files, err := parseNotification(b)
	if err != nil || len(files) != 1 || !strings.HasPrefix(files[0], "trail-bucket/AWSLogs/111122223333/CloudTrail/") {
		t.Fatalf("%v %v", files, err)
	}
	if _, err := parseNotification([]byte(`{"x":1}`)); err == nil {
		t.Fatal("unknown shape accepted")
	}
	files, _ = parseNotification([]byte(`{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"AWSLogs/1/CloudTrail/r/a+b%3D.json.gz"}}}]}`))
	if len(files) != 1 || files[0] != "b/AWSLogs/1/CloudTrail/r/a b=.json.gz" {
		t.Fatalf("%q", files)
	}
}

type problemLog struct {
	mu       sync.Mutex
	problems []collectors.Problem
}

func (p *problemLog) Report(pr collectors.Problem) {
	p.mu.Lock()
	p.problems = append(p.problems, pr)
	p.mu.Unlock()
}

// TestSQSDigestValidation: a digest chain checked end to end. File A is
// announced and intact, B is listed by the digest but never announced
// (read because of the digest), C was altered after delivery, and a later
// digest carries a forged signature.
func TestSQSDigestValidation(t *testing.T) {
	awsTestEnv(t)
	clock := windowtest.NewClock(t0)
	sink := &windowtest.Sink{}
	f := &fakeSQSS3{t: t, clock: clock, objects: map[string][]byte{}, want: map[string][]string{}, sink: sink,
		signatures: map[string]string{}, publicKeys: map[string][]byte{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	defer f.srv.Close()
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	der := x509.MarshalPKCS1PublicKey(&priv.PublicKey)
	fp, _ := PublicKeys{}.AddPublicKey(der)
	f.publicKeys[fp] = der
	sg := &signer{key: priv, fp: fp}

	var want []string
	n := 0
	logFile := func(name string) (key string, inflated []byte) {
		key = "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/" + name + ".json.gz"
		var recs []any
		for range 4 {
			it := trailRecord(n, "us-east-2", t0.Add(time.Duration(n)*time.Minute), t0)
			n++
			recs = append(recs, it.Payload)
			if (n-1)%5 != 4 {
				want = append(want, it.ID)
			}
		}
		var buf bytes.Buffer
		json.NewEncoder(&buf).Encode(map[string]any{"Records": recs})
		return key, buf.Bytes()
	}
	kA, a := logFile("A")
	kB, b := logFile("B")
	kC, c := logFile("C")
	gzExact := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	for k, v := range map[string][]byte{kA: a, kB: b} {
		f.objects["S3-bucket-name/"+k] = gzExact(v)
	}
	// C as delivered (and hashed in the digest) vs as stored now.
	altered := bytes.Replace(c, []byte(`"userName":"ada"`), []byte(`"userName":"eve"`), 1)
	f.objects["S3-bucket-name/"+kC] = gzExact(altered)

	raw1, key1, sig1 := sg.digest(t, 14, nil, nil)
	d1, _ := VerifyDigest(raw1, "S3-bucket-name", key1, sig1, PublicKeys{fp: &priv.PublicKey})
	raw2, key2, sig2 := sg.digest(t, 15, d1, map[string][]byte{kA: a, kB: b, kC: c})
	d2, _ := VerifyDigest(raw2, "S3-bucket-name", key2, sig2, PublicKeys{fp: &priv.PublicKey})
	raw3, key3, _ := sg.digest(t, 16, d2, nil)
	for k, v := range map[string][]byte{key1: raw1, key2: raw2, key3: raw3} {
		f.objects["S3-bucket-name/"+k] = gzExact(v)
	}
	f.signatures["S3-bucket-name/"+key1], f.signatures["S3-bucket-name/"+key2] = sig1, sig2
	f.signatures["S3-bucket-name/"+key3] = sig2 // forged: another digest's signature

	note := func(keys ...string) string {
		b, _ := json.Marshal(map[string]any{"s3Bucket": "S3-bucket-name", "s3ObjectKey": keys})
		return string(b)
	}
	f.msgs = []*fakeMessage{
		{id: "m1", body: note(kA, kC)},
		{id: "m2", body: note(key2)},
		{id: "m3", body: note(key3)},
	}
	src := fmt.Sprintf(`
mode = "sqs"
queue_url = "https://sqs.us-east-2.amazonaws.com/111122223333/trail"
sqs_endpoint_url = %q
s3_endpoint_url = %q
endpoint_url = %q
validate_digests = true
`, f.srv.URL, f.srv.URL, f.srv.URL)
	hf, _ := hclsyntax.ParseConfig([]byte(src), "agent.hcl", hcl.InitialPos)
	cfg, diags := DecodeConfig(hf.Body, hclconfig.EvalContext(".", nil))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	probs := &problemLog{}
	col, err := New(collectors.Settings{Type: Type, Name: "org", StateDir: t.TempDir(), Problems: probs}, cfg,
		Options{Clock: clock, HTTPClient: f.srv.Client(), Backoff: retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	clock.StopAt(clock.Now().Add(5*time.Minute), cancel)
	col.Run(ctx, nil, sink)
	cancel()

	if err := windowtest.ExactlyOnce(sink.SourceIDs(), want); err != nil {
		t.Fatalf("%v\nproblems: %+v", err, probs.problems)
	}
	var reasons []string
	for _, p := range probs.problems {
		reasons = append(reasons, p.Where+": "+p.Reason)
	}
	got := strings.Join(reasons, "\n")
	if len(reasons) != 2 || !strings.Contains(got, "/C.json.gz") || !strings.Contains(got, "does not match its digest") ||
		!strings.Contains(got, key3+": digest validation: digest signature does not verify") {
		t.Fatalf("problems:\n%s", got)
	}
}
