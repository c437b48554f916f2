package alerts

import (
	"encoding/json"
	"testing"
)

// namesOnly is event.Event's path to the names, for encoding/json.
type namesOnly struct {
	Actor struct {
		Name string `json:"name,omitempty"`
	} `json:"actor"`
	Target struct {
		User *struct {
			Name string `json:"name,omitempty"`
		} `json:"user,omitempty"`
		Group *struct {
			Name string `json:"name,omitempty"`
		} `json:"group,omitempty"`
	} `json:"target"`
}

func decodeNames(b []byte) (eventNames, error) {
	var n namesOnly
	if err := json.Unmarshal(b, &n); err != nil {
		return eventNames{}, err
	}
	out := eventNames{actor: n.Actor.Name}
	if n.Target.User != nil {
		out.user = n.Target.User.Name
	}
	if n.Target.Group != nil {
		out.group = n.Target.Group.Name
	}
	return out, nil
}

var scanSeeds = []string{
	`{"id":"a","action":"group.member.add","actor":{"name":"root","uid":0,"type":"human"},"target":{"user":{"name":"user1"},"group":{"name":"wheel"}},"origin":{"host":"h"}}`,
	`{"actor":{"id":"u1"},"target":{"user":{"id":"x"}}}`,
	`{"actor":null,"target":null}`,
	`{"target":{"user":null,"group":{"name":null}},"actor":{"name":"a\"b"}}`,
	`{"Actor":{"name":"x"}}`,
	`{"actor":{"NAME":"x","name":"y"}}`,
	`{"actor":{"name":"x"},"actor":{"id":"y"}}`,
	`{"actor":{"name":"r\u006fot"}}`,
	`{"actor":{"name":5}}`,
	`{"actor":"root"}`,
	`{"changes":[{"field":"}","old":"{[","new":"\\"}],"actor":{"name":"n"},"raw":"{\"actor\":{\"name\":\"fake\"}}"}`,
	` { "actor" : { "name" : "sp" } , "target" : { "group" : { "name" : "g" } } } `,
	`{"uſer":1,"target":{"uſer":{"name":"x"}}}`,
	`[]`, `{}`, `null`, `{"actor":{"name":"\xff"}}`,
}

func TestScanNames(t *testing.T) {
	tests := []struct {
		in   string
		want eventNames
		ok   bool
	}{
		{scanSeeds[0], eventNames{"root", "user1", "wheel"}, true},
		{scanSeeds[1], eventNames{}, true},
		{scanSeeds[2], eventNames{}, true},
		{scanSeeds[3], eventNames{}, false}, // escaped name: decode
		{scanSeeds[4], eventNames{}, false}, // case-folded key
		{scanSeeds[5], eventNames{}, false},
		{scanSeeds[6], eventNames{}, false}, // repeated key
		{scanSeeds[8], eventNames{}, false}, // wrong type
		{scanSeeds[9], eventNames{}, false},
		{scanSeeds[10], eventNames{actor: "n"}, true},
		{scanSeeds[11], eventNames{actor: "sp", group: "g"}, true},
		{scanSeeds[12], eventNames{}, false}, // ſ folds to s
		{`{"target":{"group":{"name":"g"}}}`, eventNames{group: "g"}, true},
		{`{"actor":{"name":"x"}`, eventNames{}, false},
	}
	for _, tt := range tests {
		got, ok := scanNames([]byte(tt.in))
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("scanNames(%s) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzScanNames: on valid JSON, whatever the scanner is sure of is what
// encoding/json decodes, and it is never sure when the decode fails.
func FuzzScanNames(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := scanNames(b)
		if !ok || !json.Valid(b) {
			return
		}
		want, err := decodeNames(b)
		if err != nil {
			t.Fatalf("scanner sure of %+v, decode fails: %v", got, err)
		}
		if got != want {
			t.Fatalf("scanner %+v, decode %+v", got, want)
		}
	})
}

func BenchmarkScanNames(b *testing.B) {
	line := []byte(`{"id":"bench-1-5-77","time":"2026-03-01T00:01:17Z","observed_time":"2026-03-01T00:01:17Z","action":"group.member.add","outcome":"success","severity":"medium","actor":{"name":"root","uid":0,"type":"human"},"target":{"user":{"name":"user77"},"group":{"name":"wheel"}},"origin":{"system":"linux","host":"host-bench-1-5","program":"gpasswd"},"source":{"collector":"authlog"},"ocsf":{"class_uid":3006,"activity_id":3,"type_uid":300603,"category_uid":3}}`)
	for b.Loop() {
		if _, ok := scanNames(line); !ok {
			b.Fatal("not sure")
		}
	}
	b.SetBytes(int64(len(line)))
}
