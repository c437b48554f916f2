package all

import "testing"

func TestRegistryBuilds(t *testing.T) {
	r := Registry()
	for _, typ := range r.Types() {
		f, err := r.Lookup(typ)
		if err != nil {
			t.Fatal(err)
		}
		if f.Description == "" {
			t.Errorf("collector %q has no description", typ)
		}
	}
	if _, err := r.Lookup("authlog"); err != nil {
		t.Error(err)
	}
}
