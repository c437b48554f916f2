package accesslog

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/internal/testenv"
)

// backlogChanges is the size of the slapd backlog the benchmark reads.
const backlogChanges = 10000

// makeBacklog writes n real changes through slapd (user adds, group
// membership adds, attribute modifies of groups) from 4 connections, so
// that cn=accesslog holds n write entries. With few groups each grows to
// thousands of members, and since the log records old values (logold),
// every later entry carries that member list in reqOld.
func makeBacklog(b *testing.B, s *testenv.Slapd, n, groups int) {
	b.Helper()
	const workers = 4
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := ldap.DialURL(s.URL)
			if err != nil {
				failed.Store(err)
				return
			}
			defer c.Close()
			if err := c.Bind(testenv.SlapdAdminDN, testenv.SlapdAdminPW); err != nil {
				failed.Store(err)
				return
			}
			for g := w; g < groups; g += workers {
				add := ldap.NewAddRequest(fmt.Sprintf("cn=g%d,ou=groups,dc=example,dc=com", g), nil)
				add.Attribute("objectClass", []string{"posixGroup"})
				add.Attribute("cn", []string{fmt.Sprintf("g%d", g)})
				add.Attribute("gidNumber", []string{fmt.Sprint(5000 + g)})
				if err := c.Add(add); err != nil {
					failed.Store(err)
					return
				}
			}
			for i := w; i < n-groups; i += workers {
				group := fmt.Sprintf("cn=g%d,ou=groups,dc=example,dc=com", (i/3)%groups)
				uid := fmt.Sprintf("b%d", i/3)
				var err error
				switch i % 3 {
				case 0:
					r := ldap.NewAddRequest("uid="+uid+",ou=people,dc=example,dc=com", nil)
					for k, v := range userAttrs(uid, "pw-"+uid, i) {
						r.Attribute(k, v)
					}
					err = c.Add(r)
				case 1:
					r := ldap.NewModifyRequest(group, nil)
					r.Add("memberUid", []string{fmt.Sprintf("m%d", i)})
					err = c.Modify(r)
				case 2:
					r := ldap.NewModifyRequest(group, nil)
					r.Replace("description", []string{fmt.Sprint("d", i)})
					err = c.Modify(r)
				}
				if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}

type countSink struct{ n atomic.Int64 }

func (c *countSink) Emit(_ context.Context, recs ...collectors.Record) error {
	c.n.Add(int64(len(recs)))
	return nil
}

// BenchmarkSyncBacklog reads a backlog of 10,000 changes from a real slapd
// through the syncrepl refresh, normalisation and position encoding: with
// 4 groups (reqOld lists of up to 800 members: 1.6M values in all) and
// with 400 groups (up to 8 members).
func BenchmarkSyncBacklog(b *testing.B) {
	for _, groups := range []int{4, 400} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) { benchBacklog(b, groups) })
	}
}

func benchBacklog(b *testing.B, groups int) {
	s := testenv.StartSlapd(b, testenv.SlapdOptions{})
	start := time.Now()
	makeBacklog(b, s, backlogChanges, groups)
	b.Logf("backlog of %d changes written in %v", backlogChanges, time.Since(start))
	// Count the events one full read yields.
	want := readBacklog(b, s, 0)
	b.ResetTimer()
	var events int64
	for b.Loop() {
		events += readBacklog(b, s, want)
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(events)/float64(b.N), "events/op")
}

// readBacklog runs the collector from the start until want events arrived
// (want 0: until the stream has been quiet for a second).
func readBacklog(b *testing.B, s *testenv.Slapd, want int64) int64 {
	cfg := &Config{}
	*cfg = Config{PollInterval: time.Second}
	cfg.URL, cfg.BindDN, cfg.BindPassword = s.URL, testenv.SlapdReaderDN, testenv.SlapdReaderPW
	cfg.BaseDN, cfg.PageSize = DefaultBaseDN, 500
	cfg.PrivilegedGroups = []string{"cn=g0,ou=groups,dc=example,dc=com", "cn=g1,ou=groups,dc=example,dc=com"}
	c, err := New(collectors.Settings{Name: "bench"}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sink countSink
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, nil, &sink) }()
	last, quiet := int64(-1), 0
	for {
		n := sink.n.Load()
		if want > 0 && n >= want {
			break
		}
		if want == 0 {
			if n == last && n > 0 {
				quiet++
				if quiet >= 10 {
					break
				}
			} else {
				quiet = 0
			}
			last = n
			time.Sleep(100 * time.Millisecond)
			continue
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	return sink.n.Load()
}

// BenchmarkParse measures the parser alone over the recorded samples.
func BenchmarkParse(b *testing.B) {
	in, err := os.ReadFile("testdata/accesslog_sample.ldif")
	if err != nil {
		b.Fatal(err)
	}
	p, _ := NewParser(collectors.Settings{Name: "bench"}, nil)
	var sink countSink
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Parse(context.Background(), strings.NewReader(string(in)), "bench", &sink); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(sink.n.Load())/b.Elapsed().Seconds(), "events/s")
}
