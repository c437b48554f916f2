package central

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPostingsRoundTrip(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := newPostingsBuilder(41)
	evs := []StoredEvent{
		{Time: base, Action: "group.member.add", Actor: "root", User: "alice", Group: "wheel", Privileges: "wheel\nsudo\nsudo", System: "linux", Host: "h1"},
		// Earlier than the first: late delivery makes time deltas negative.
		{Time: base.Add(-time.Hour), Action: "user.create", User: "bob", System: "linux", Host: "h1"},
		{Time: base.Add(time.Nanosecond), Action: "group.member.add", Actor: "root", User: "alice", Group: "sudo", System: "linux", Host: "h2"},
	}
	for i := range evs {
		b.addEvent(int64(41+2*i), &evs[i]) // row ids need not be consecutive
	}
	got := map[string]string{}
	for _, r := range b.rows() {
		var entries []string
		if err := decodePostings(r, func(id, tm int64) { entries = append(entries, fmt.Sprintf("%d@%d", id, (tm-base.UnixNano())/1e9)) }); err != nil {
			t.Fatal(err)
		}
		if r.n != len(entries) || r.firstRow != 41 {
			t.Fatalf("row %+v decoded %v", r, entries)
		}
		got[fmt.Sprintf("%d/%s", r.term.field, r.term.value)] = strings.Join(entries, " ")
	}
	want := map[string]string{
		"1/root":             "41@0 45@0",
		"2/alice":            "41@0 45@0",
		"2/bob":              "43@-3600",
		"3/group.member.add": "41@0 45@0",
		"3/user.create":      "43@-3600",
		"4/linux":            "41@0 43@-3600 45@0",
		"5/h1":               "41@0 43@-3600",
		"5/h2":               "45@0",
		// The group that is also a privilege, and a repeated privilege,
		// are one entry.
		"6/wheel": "41@0",
		"6/sudo":  "41@0 45@0",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("postings\n got %v\nwant %v", got, want)
	}
}

func TestDecodePostingsRejects(t *testing.T) {
	good := binary.AppendVarint(binary.AppendUvarint(nil, 1), 5)
	tests := []struct {
		name string
		r    postingRow
	}{
		{"short", postingRow{firstRow: 1, n: 2, entries: good}},
		{"trailing", postingRow{firstRow: 1, n: 1, entries: append(slices.Clone(good), 0)}},
		{"zero id delta", postingRow{firstRow: 1, n: 1, entries: binary.AppendVarint(binary.AppendUvarint(nil, 0), 5)}},
		{"no time", postingRow{firstRow: 1, n: 1, entries: binary.AppendUvarint(nil, 1)}},
		{"huge id delta", postingRow{firstRow: 1, n: 1, entries: binary.AppendVarint(binary.AppendUvarint(nil, math.MaxUint64), 5)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := decodePostings(tc.r, func(int64, int64) {}); !errors.Is(err, errBadPostings) {
				t.Fatalf("err %v", err)
			}
		})
	}
	if err := decodePostings(postingRow{firstRow: 1, n: 1, entries: good}, func(id, tm int64) {
		if id != 1 || tm != 5 {
			t.Fatalf("decoded %d %d", id, tm)
		}
	}); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodePostings(f *testing.F) {
	f.Add(int64(1), 1, binary.AppendVarint(binary.AppendUvarint(nil, 1), 5))
	f.Add(int64(100), 3, []byte{1, 2, 1, 3, 200, 1, 4})
	f.Fuzz(func(t *testing.T, first int64, n int, entries []byte) {
		if n < 0 || n > 1<<16 || first < 1 || first > 1<<50 {
			return
		}
		r := postingRow{firstRow: first, n: n, entries: entries}
		last, count := first-1, 0
		err := decodePostings(r, func(id, _ int64) {
			if id <= last {
				t.Fatalf("row id %d after %d", id, last)
			}
			last = id
			count++
		})
		if err == nil && count != n {
			t.Fatalf("decoded %d of %d entries without error", count, n)
		}
	})
}

// TestQueryPostingsMatchScan: queries answered from postings, by reading
// events in time order, or both (a selective term and a common one) page
// through exactly the events a plain filter over all of them finds, with
// late (out of time order) events, events re-sent in a later batch, and
// groups matched by membership or privilege.
func TestQueryPostingsMatchScan(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pick := func(vals ...string) string { return vals[rng.IntN(len(vals))] }
	var sent []StoredEvent
	var lastID int64
	for seq := range 40 {
		var evs []StoredEvent
		for i := range 50 {
			if len(sent) > 0 && rng.IntN(30) == 0 {
				evs = append(evs, sent[rng.IntN(len(sent))]) // re-sent: stored once
				continue
			}
			var privs []string
			for _, p := range []string{"sudo", "wheel", "admin"} {
				if rng.IntN(4) == 0 {
					privs = append(privs, p)
				}
			}
			id := fmt.Sprintf("e%d-%d", seq, i)
			e := StoredEvent{EventID: id,
				// Mostly in order, some late, some at the same instant.
				Time:   base.Add(time.Duration(seq*50+i-rng.IntN(3)*rng.IntN(400)) * time.Second),
				Action: pick("user.create", "user.delete", "group.member.add", "group.member.remove", "password.change"), Outcome: "success",
				Actor: pick("root", "root", "admin", ""), User: fmt.Sprintf("u%d", rng.IntN(300)), Group: pick("", "", "wheel", "sudo", "docker"),
				Privileges: strings.Join(privs, "\n"), System: pick("linux", "okta"), Host: pick("h1", "h2", "h3", "h4"),
				JSON: []byte(`{"id":"` + id + `"}`)}
			evs = append(evs, e)
			sent = append(sent, e)
		}
		res, err := s.CommitBatch(ctx, testBatchWrite("a1", uint64(seq), evs...))
		if err != nil {
			t.Fatal(err)
		}
		lastID = res.BatchID
	}
	if err := s.WaitIndexed(ctx, lastID); err != nil {
		t.Fatal(err)
	}
	all, err := s.scanByTime(ctx, nil, nil, math.MaxInt32)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 1900 {
		t.Fatalf("%d events stored", len(all))
	}
	matches := func(q EventQuery, e StoredEvent) bool {
		eq := func(want, got string) bool { return want == "" || want == got }
		return eq(q.Actor, e.Actor) && eq(q.User, e.User) && eq(q.Action, e.Action) && eq(q.System, e.System) && eq(q.Host, e.Host) &&
			(q.Group == "" || q.Group == e.Group || slices.Contains(strings.Split(e.Privileges, "\n"), q.Group)) &&
			(q.Since.IsZero() || !e.Time.Before(q.Since)) && (q.Until.IsZero() || e.Time.Before(q.Until))
	}
	queries := []EventQuery{{User: "u7"}, {Group: "sudo"}, {Group: "wheel", Action: "group.member.add"}, {Actor: "admin", User: "u12"}, {User: "none"}}
	for range 60 {
		var q EventQuery
		for range 1 + rng.IntN(3) {
			switch rng.IntN(6) {
			case 0:
				q.Actor = pick("root", "admin")
			case 1:
				q.User = fmt.Sprintf("u%d", rng.IntN(300))
			case 2:
				q.Action = pick("user.create", "group.member.add", "password.change")
			case 3:
				q.System = pick("linux", "okta")
			case 4:
				q.Host = pick("h1", "h2", "h3", "h4")
			case 5:
				q.Group = pick("wheel", "sudo", "admin", "docker")
			}
		}
		if rng.IntN(3) == 0 {
			q.Since = base.Add(time.Duration(rng.IntN(2000)) * time.Second)
			q.Until = q.Since.Add(time.Duration(rng.IntN(1000)) * time.Second)
		}
		queries = append(queries, q)
	}
	for _, always := range []int{postingsAlways, 0} {
		s.postingsAlways = always
		plans := map[bool]int{}
		for _, q := range queries {
			var want []string
			for _, e := range all {
				if matches(q, e) {
					want = append(want, e.EventID)
				}
			}
			_, viaPostings, err := s.postingsCandidates(ctx, q.terms(), timeSpan{from: math.MinInt64, until: math.MaxInt64, afterT: math.MinInt64})
			if err != nil {
				t.Fatal(err)
			}
			plans[viaPostings]++
			var got []string
			p := q
			p.Limit = 1 + rng.IntN(40)
			for {
				page, err := s.QueryEvents(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range page.Events {
					got = append(got, e.EventID)
				}
				if page.Next == "" {
					break
				}
				p.After = page.Next
			}
			if !slices.Equal(got, want) {
				t.Fatalf("postings from %d entries, query %+v (via postings %v):\n got %d %v\nwant %d %v", always, q, viaPostings, len(got), got, len(want), want)
			}
		}
		// Both plans were exercised where the threshold allows it.
		if plans[true] == 0 || always == 0 && plans[false] == 0 {
			t.Fatalf("postings from %d entries: plans used %v", always, plans)
		}
	}
}

// TestCheckPostingsWhileIndexing: provtrail verify on the data dir of a
// central that is indexing sees one consistent snapshot of events and
// postings, and so finds nothing wrong.
func TestCheckPostingsWhileIndexing(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	done := make(chan error, 1)
	go func() {
		var last int64
		for seq := range 60 {
			var evs []StoredEvent
			for i := range 50 {
				id := fmt.Sprintf("w%d-%d", seq, i)
				evs = append(evs, StoredEvent{EventID: id, Time: base.Add(time.Duration(seq*50+i) * time.Second), Action: "user.create",
					Actor: "root", User: fmt.Sprintf("u%d", i%7), System: "linux", Host: fmt.Sprintf("h%d", seq%3), JSON: []byte(`{"id":"` + id + `"}`)})
			}
			res, err := s.CommitBatch(ctx, testBatchWrite("a1", uint64(seq), evs...))
			if err != nil {
				done <- err
				return
			}
			last = res.BatchID
			time.Sleep(2 * time.Millisecond)
		}
		done <- s.WaitIndexed(ctx, last)
	}()
	checks := 0
	for {
		var problems []string
		rows, err := s.checkPostings(ctx, func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) })
		if err != nil || len(problems) > 0 {
			t.Fatalf("check %d (%d rows): %v %q", checks, rows, err, problems)
		}
		checks++
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if rows, err := s.checkPostings(ctx, func(format string, args ...any) { t.Errorf(format, args...) }); err != nil || rows == 0 {
				t.Fatalf("final check: %d rows, %v", rows, err)
			}
			t.Logf("%d checks while indexing", checks)
			return
		default:
		}
	}
}
