package event

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The JSON Schema in docs/ is the public contract; these tests keep it and
// the Go types from drifting apart.

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("../docs/event.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("docs/event.schema.json: %v", err)
	}
	return s
}

func schemaPaths(prefix string, node map[string]any, out map[string]bool) {
	props, _ := node["properties"].(map[string]any)
	if items, ok := node["items"].(map[string]any); ok {
		props, _ = items["properties"].(map[string]any)
	}
	for name, v := range props {
		p := prefix + name
		out[p] = true
		schemaPaths(p+".", v.(map[string]any), out)
	}
}

func goPaths(prefix string, typ reflect.Type, out map[string]bool) {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct || typ == reflect.TypeFor[time.Time]() {
		return
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		p := prefix + name
		out[p] = true
		goPaths(p+".", f.Type, out)
	}
}

func TestSchemaMatchesGoTypes(t *testing.T) {
	s := loadSchema(t)
	fromSchema, fromGo := map[string]bool{}, map[string]bool{}
	schemaPaths("", s, fromSchema)
	goPaths("", reflect.TypeFor[Event](), fromGo)
	for p := range fromGo {
		if !fromSchema[p] {
			t.Errorf("Go field %s is missing from docs/event.schema.json", p)
		}
	}
	for p := range fromSchema {
		if !fromGo[p] {
			t.Errorf("schema property %s has no Go field", p)
		}
	}
	var enum []string
	for _, v := range s["properties"].(map[string]any)["action"].(map[string]any)["enum"].([]any) {
		enum = append(enum, v.(string))
	}
	slices.Sort(enum)
	var actions []string
	for _, a := range Actions() {
		actions = append(actions, string(a))
	}
	if !slices.Equal(enum, actions) {
		t.Errorf("schema action enum %v != vocabulary %v", enum, actions)
	}
}

func TestDocExamplesAreValid(t *testing.T) {
	files, err := filepath.Glob("../docs/examples/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			var e Event
			if err := dec.Decode(&e); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if err := Validate(&e); err != nil {
				t.Fatalf("invalid: %v", err)
			}
		})
	}
}
