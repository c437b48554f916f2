package cloudtrail

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/collectors/internal/window"
	"github.com/provtrail/provtrail/event"
)

// Notes the SQS mode keeps in the state directory: a trail file taken
// from the queue (pinned: it survives any rollback), and a file whose
// records were all emitted (rolled back with the records).
const (
	noteFile = "file"
	noteDone = "done"
	// noteHash records the SHA-256 of a file's inflated bytes ("bucket/key
	// HEX"), for checking against digests.
	noteHash = "hash"
)

// maxObject bounds one trail file (CloudTrail files are a few MB).
const maxObject = 1 << 30

// sqsCollector reads trail files announced through SQS: CloudTrail's SNS
// notification ({s3Bucket, s3ObjectKey[]}, raw or in the SNS envelope) or
// S3 event notifications. A message is deleted only after every record of
// its files was handed to the pipeline, and each file is noted in the
// state directory before that: if the agent dies before the records are
// spooled, the next start reads the noted files again (de-duplication
// drops what was committed), so a deleted message never loses a file.
type sqsCollector struct {
	set        collectors.Settings
	cfg        *Config
	clock      window.Clock
	log        *slog.Logger
	sqs        *sqs.Client
	s3         *s3.Client
	m          *mapper
	queueURL   string
	visibility int32
	failures   int
	opt        Options
	// Digest validation: CloudTrail API clients for ListPublicKeys, by
	// region, and the keys fetched so far.
	trails map[string]*cloudtrail.Client
	keys   PublicKeys
}

func newSQS(set collectors.Settings, cfg *Config, opt Options, m *mapper) (collectors.Collector, error) {
	region := cfg.Region
	if region == "" {
		region = regionOfQueue(cfg.QueueURL)
	}
	awsCfg, err := loadAWS(context.Background(), cfg, region, opt, set.Logger)
	if err != nil {
		return nil, fmt.Errorf("cloudtrail %s: %w", set.Name, err)
	}
	return &sqsCollector{
		set: set, cfg: cfg, clock: opt.Clock, log: set.Logger, m: m, queueURL: cfg.QueueURL, opt: opt,
		trails: map[string]*cloudtrail.Client{}, keys: PublicKeys{},
		visibility: int32(cfg.visibility / time.Second),
		sqs: sqs.NewFromConfig(awsCfg, func(o *sqs.Options) {
			if cfg.SQSEndpointURL != "" {
				o.BaseEndpoint = aws.String(cfg.SQSEndpointURL)
			}
		}),
		s3: s3.NewFromConfig(awsCfg, func(o *s3.Options) {
			if cfg.S3EndpointURL != "" {
				o.BaseEndpoint = aws.String(cfg.S3EndpointURL)
				o.UsePathStyle = true
			}
		}),
	}, nil
}

// regionOfQueue reads the region from https://sqs.REGION.amazonaws.com/...
func regionOfQueue(q string) string {
	u, err := url.Parse(q)
	if err == nil {
		parts := strings.Split(u.Hostname(), ".")
		if len(parts) >= 4 && parts[0] == "sqs" {
			return parts[1]
		}
	}
	return DefaultRegion
}

func (c *sqsCollector) Run(ctx context.Context, start collectors.Position, out collectors.Emitter) error {
	d, err := window.OpenDedup(c.set.StateDir, start, c.clock, c.set.Problems)
	if err != nil {
		return fmt.Errorf("cloudtrail %s: %w", c.set.Name, err)
	}
	defer d.Close()
	for _, f := range pendingFiles(d.Notes()) {
		c.log.Info("reading a trail file again whose records were not all committed", "collector", c.set.Name, "file", f)
		for {
			err := c.processFile(ctx, d, out, f)
			if err == nil || errors.Is(err, errGone) {
				break
			}
			if err := c.backoff(ctx, err); err != nil {
				return err
			}
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d.PruneBefore(c.clock.Now().Add(-c.cfg.dedupe))
		resp, err := c.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(c.queueURL),
			MaxNumberOfMessages: 10,
			WaitTimeSeconds:     20,
			VisibilityTimeout:   c.visibility,
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := c.backoff(ctx, fmt.Errorf("ReceiveMessage: %w", err)); err != nil {
				return err
			}
			continue
		}
		if len(resp.Messages) == 0 {
			if err := c.clock.Sleep(ctx, time.Second); err != nil {
				return err
			}
			continue
		}
		for _, msg := range resp.Messages {
			if err := c.handle(ctx, d, out, msg); err != nil {
				if ctx.Err() != nil || errors.Is(err, errEmit) {
					return err
				}
				// The message stays; SQS delivers it again after its
				// visibility timeout (and its redrive policy ends a
				// poison message's loop).
				if err := c.backoff(ctx, err); err != nil {
					return err
				}
			}
		}
	}
}

var (
	errEmit = errors.New("emit")
	errGone = errors.New("trail file is gone")
)

func (c *sqsCollector) handle(ctx context.Context, d *window.Dedup, out collectors.Emitter, msg sqstypes.Message) error {
	body := aws.ToString(msg.Body)
	all, err := parseNotification([]byte(body))
	if err != nil {
		cloudjson.Report(c.set.Problems, "sqs message "+aws.ToString(msg.MessageId), err.Error(), []byte(body))
		return nil
	}
	var files, digests []string
	for _, f := range all {
		switch {
		case strings.Contains(f, "/CloudTrail-Digest/"):
			if c.cfg.ValidateDigests {
				digests = append(digests, f)
			}
		case strings.Contains(f, "/CloudTrail/"):
			files = append(files, f)
		}
	}
	for _, f := range files {
		if err := d.Note(noteFile, f, true); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := c.processFile(ctx, d, out, f); err != nil && !errors.Is(err, errGone) {
			return err
		}
	}
	for _, f := range digests {
		if err := c.checkDigest(ctx, d, out, f); err != nil {
			return err
		}
	}
	if _, err := c.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(c.queueURL), ReceiptHandle: msg.ReceiptHandle}); err != nil {
		// Delivered again later; its records are de-duplicated.
		c.log.Warn("DeleteMessage failed; the message will be delivered again", "collector", c.set.Name, "error", err)
	}
	c.failures = 0
	return nil
}

// processFile emits every record of one trail file, then notes it done.
func (c *sqsCollector) processFile(ctx context.Context, d *window.Dedup, out collectors.Emitter, f string) error {
	bucket, key, _ := strings.Cut(f, "/")
	obj, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		var nsk interface{ ErrorCode() string }
		if errors.As(err, &nsk) && (nsk.ErrorCode() == "NoSuchKey" || nsk.ErrorCode() == "NotFound") {
			cloudjson.Report(c.set.Problems, "s3://"+f, "announced trail file does not exist", nil)
			d.Note(noteDone, f, false)
			return errGone
		}
		return fmt.Errorf("GetObject s3://%s: %w", f, classify(err))
	}
	defer obj.Body.Close()
	r, err := maybeGunzip(io.LimitReader(obj.Body, maxObject))
	if err != nil {
		cloudjson.Report(c.set.Problems, "s3://"+f, err.Error(), nil)
		return d.Note(noteDone, f, false)
	}
	h := sha256.New()
	r = io.TeeReader(r, h)
	var evs []event.Event
	err = eachEvent(ctx, r, "s3://"+f, c.m, c.set.Problems, func(ev event.Event) error {
		ev.Source.File = "s3://" + f
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		return err
	}
	for len(evs) > 0 {
		n := min(len(evs), 500)
		if _, err := d.Emit(ctx, out, evs[:n]); err != nil {
			return fmt.Errorf("%w: %w", errEmit, err)
		}
		evs = evs[n:]
	}
	io.Copy(h, r) // a torn tail the parser stopped at still counts
	if err := d.Note(noteHash, f+" "+hex.EncodeToString(h.Sum(nil)), false); err != nil {
		return err
	}
	return d.Note(noteDone, f, false)
}

func (c *sqsCollector) backoff(ctx context.Context, cause error) error {
	wait := min(time.Second<<min(c.failures, 8), 5*time.Minute)
	c.failures++
	c.log.Warn("reading trail files failed; retrying", "collector", c.set.Name, "wait", wait, "error", cause)
	return c.clock.Sleep(ctx, wait)
}

// pendingFiles returns the noted files without a later done note.
func pendingFiles(notes []window.Note) []string {
	state := map[string]bool{}
	var order []string
	for _, n := range notes {
		switch n.Kind {
		case noteFile:
			if _, ok := state[n.Key]; !ok {
				order = append(order, n.Key)
			}
			state[n.Key] = true
		case noteDone:
			state[n.Key] = false
		}
	}
	var out []string
	for _, f := range order {
		if state[f] {
			out = append(out, f)
		}
	}
	return out
}

// parseNotification returns the files ("bucket/key") an SQS message
// announces: CloudTrail's SNS notification, raw or inside the SNS
// envelope, or an S3 event notification. The caller tells log files
// (/CloudTrail/) from digests (/CloudTrail-Digest/) and ignores the rest.
func parseNotification(body []byte) ([]string, error) {
	var n struct {
		Type        string   `json:"Type"`
		Message     string   `json:"Message"`
		S3Bucket    string   `json:"s3Bucket"`
		S3ObjectKey []string `json:"s3ObjectKey"`
		Event       string   `json:"Event"`
		Records     []struct {
			EventName string `json:"eventName"`
			S3        struct {
				Bucket struct {
					Name string `json:"name"`
				} `json:"bucket"`
				Object struct {
					Key string `json:"key"`
				} `json:"object"`
			} `json:"s3"`
		} `json:"Records"`
	}
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, fmt.Errorf("not a JSON notification: %w", err)
	}
	var files []string
	switch {
	case n.Type == "Notification" && n.Message != "":
		return parseNotification([]byte(n.Message))
	case n.S3Bucket != "":
		for _, k := range n.S3ObjectKey {
			files = append(files, n.S3Bucket+"/"+k)
		}
	case len(n.Records) > 0:
		for _, r := range n.Records {
			if !strings.HasPrefix(r.EventName, "ObjectCreated:") || r.S3.Bucket.Name == "" {
				continue
			}
			key, err := url.QueryUnescape(r.S3.Object.Key)
			if err != nil {
				return nil, fmt.Errorf("S3 event key %q: %w", r.S3.Object.Key, err)
			}
			files = append(files, r.S3.Bucket.Name+"/"+key)
		}
	case n.Event == "s3:TestEvent":
		return nil, nil
	default:
		return nil, errors.New("neither a CloudTrail nor an S3 event notification")
	}
	return files, nil
}

// maxDigest bounds a digest file.
const maxDigest = 64 << 20

// checkDigest validates one CloudTrail digest file: its signature (keys
// from ListPublicKeys), its link to the previous digest (read again from
// S3), and every log file it lists against the SHA-256 of what was read.
// A listed file the queue never announced is read now, so the digest also
// closes gaps in the notifications. Failures are reported as problems;
// only an Emit failure stops the collector.
func (c *sqsCollector) checkDigest(ctx context.Context, d *window.Dedup, out collectors.Emitter, f string) error {
	where := "s3://" + f
	bad := func(err error) {
		c.log.Error("CloudTrail digest validation failed", "collector", c.set.Name, "digest", where, "error", err)
		cloudjson.Report(c.set.Problems, where, "digest validation: "+err.Error(), nil)
	}
	dg, err := c.readDigest(ctx, f)
	if err != nil {
		bad(err)
		return nil
	}
	if !dg.Starting() {
		prevFile := deref(dg.PreviousDigestS3Bucket) + "/" + deref(dg.PreviousDigestS3Object)
		prev, err := c.readDigest(ctx, prevFile)
		switch {
		case err != nil:
			bad(fmt.Errorf("previous digest s3://%s: %w", prevFile, err))
		default:
			if err := dg.VerifyPrevious(prev); err != nil {
				bad(err)
			}
		}
	}
	hashes := func() map[string]string {
		m := map[string]string{}
		for _, n := range d.Notes() {
			if n.Kind == noteHash {
				if i := strings.LastIndexByte(n.Key, ' '); i > 0 {
					m[n.Key[:i]] = n.Key[i+1:]
				}
			}
		}
		return m
	}
	seen := hashes()
	for _, lf := range dg.LogFiles {
		file := lf.S3Bucket + "/" + lf.S3Object
		if _, ok := seen[file]; !ok {
			c.log.Warn("digest lists a trail file the queue did not announce; reading it", "collector", c.set.Name, "file", file)
			if err := d.Note(noteFile, file, true); err != nil {
				return err
			}
			if err := c.processFile(ctx, d, out, file); err != nil {
				if errors.Is(err, errEmit) || ctx.Err() != nil {
					return err
				}
				bad(fmt.Errorf("listed file s3://%s: %w", file, err))
				continue
			}
			seen = hashes()
		}
		if seen[file] != lf.HashValue {
			bad(fmt.Errorf("%w: s3://%s", ErrLogFileHash, file))
		}
	}
	c.log.Info("CloudTrail digest checked", "collector", c.set.Name, "digest", where, "files", len(dg.LogFiles))
	return nil
}

// readDigest fetches and verifies one digest file's signature.
func (c *sqsCollector) readDigest(ctx context.Context, f string) (*Digest, error) {
	bucket, key, _ := strings.Cut(f, "/")
	obj, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("GetObject: %w", err)
	}
	defer obj.Body.Close()
	r, err := maybeGunzip(io.LimitReader(obj.Body, maxDigest))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(r, maxDigest))
	if err != nil {
		return nil, fmt.Errorf("read digest: %w", err)
	}
	sig := obj.Metadata["signature"]
	dg, err := VerifyDigest(raw, bucket, key, sig, c.keys)
	if errors.Is(err, ErrUnknownKey) {
		if lerr := c.loadKeys(ctx, regionOfDigest(key), dg); lerr != nil {
			return nil, lerr
		}
		dg, err = VerifyDigest(raw, bucket, key, sig, c.keys)
	}
	return dg, err
}

// loadKeys fetches the region's digest public keys valid around dg.
func (c *sqsCollector) loadKeys(ctx context.Context, region string, dg *Digest) error {
	api := c.trails[region]
	if api == nil {
		awsCfg, err := loadAWS(ctx, c.cfg, region, c.opt, c.log)
		if err != nil {
			return err
		}
		api = cloudtrail.NewFromConfig(awsCfg, func(o *cloudtrail.Options) {
			if c.cfg.EndpointURL != "" {
				o.BaseEndpoint = aws.String(c.cfg.EndpointURL)
			}
		})
		c.trails[region] = api
	}
	in := &cloudtrail.ListPublicKeysInput{}
	if t, err := time.Parse(time.RFC3339, dg.DigestEndTime); err == nil {
		from, to := t.Add(-2*time.Hour), t.Add(time.Hour)
		in.StartTime, in.EndTime = &from, &to
	}
	for {
		outp, err := api.ListPublicKeys(ctx, in)
		if err != nil {
			return fmt.Errorf("ListPublicKeys in %s: %w", region, err)
		}
		for _, k := range outp.PublicKeyList {
			fp, err := c.keys.AddPublicKey(k.Value)
			if err != nil {
				return err
			}
			if want := aws.ToString(k.Fingerprint); want != "" && want != fp {
				return fmt.Errorf("ListPublicKeys: key fingerprint %s does not match its bytes (%s)", want, fp)
			}
		}
		if outp.NextToken == nil {
			return nil
		}
		in.NextToken = outp.NextToken
	}
}

// regionOfDigest reads REGION from .../CloudTrail-Digest/REGION/...
func regionOfDigest(key string) string {
	_, rest, ok := strings.Cut(key, "/CloudTrail-Digest/")
	if !ok {
		return DefaultRegion
	}
	region, _, _ := strings.Cut(rest, "/")
	return region
}
