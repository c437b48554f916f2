package grafana

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const root = "../.."

var (
	// A metric name as the code registers it: Name: "provtrail_...".
	codeMetric = regexp.MustCompile(`"(provtrail_(?:agent|central)_[a-z0-9_]+)"`)
	anyMetric  = regexp.MustCompile(`provtrail_(?:agent|central)_[a-z0-9_]+`)
)

// codeMetrics returns every metric name registered in agent/, pipeline/
// and central/ (non-test Go files).
func codeMetrics(t *testing.T) map[string]string {
	t.Helper()
	found := map[string]string{}
	for _, dir := range []string{"agent", "pipeline", "central"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range codeMetric.FindAllSubmatch(b, -1) {
				found[string(m[1])] = path
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(found) == 0 {
		t.Fatal("no provtrail_* metrics found in agent/, pipeline/, central/")
	}
	return found
}

// base maps a histogram series name to its metric.
func base(name string, known map[string]string) string {
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, suf); ok {
			if _, ok := known[b]; ok {
				return b
			}
		}
	}
	return name
}

type panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("provtrail-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	return d
}

func TestDashboardIsImportable(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Fatal("dashboard needs uid and title")
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	if !vars["datasource"] {
		t.Fatal("dashboard has no datasource variable: it would be tied to one Prometheus")
	}
	ids := map[int]string{}
	for _, p := range d.Panels {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panel id %d used by %q and %q", p.ID, prev, p.Title)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q does not fit the 24-column grid: %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the ${datasource} variable", p.Title)
		}
		if len(p.Targets) == 0 || p.Description == "" {
			t.Errorf("panel %q needs a query and a description", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" {
				t.Errorf("panel %q has a target without expr or refId", p.Title)
			}
			if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") || strings.Count(tg.Expr, "{") != strings.Count(tg.Expr, "}") {
				t.Errorf("panel %q: unbalanced expression %q", p.Title, tg.Expr)
			}
		}
	}
}

// TestMetricsInStep: every metric the code registers is on the dashboard
// and documented; everything the dashboard and the alert rules query exists.
func TestMetricsInStep(t *testing.T) {
	code := codeMetrics(t)
	d := loadDashboard(t)
	onDashboard := map[string]bool{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range anyMetric.FindAllString(tg.Expr, -1) {
				m = base(m, code)
				onDashboard[m] = true
				if _, ok := code[m]; !ok {
					t.Errorf("dashboard panel %q queries %s, which no code registers", p.Title, m)
				}
			}
		}
	}
	rules, err := os.ReadFile("../prometheus/provtrail-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range anyMetric.FindAllString(string(rules), -1) {
		if _, ok := code[base(m, code)]; !ok {
			t.Errorf("alert rules query %s, which no code registers", m)
		}
	}
	docs, err := os.ReadFile(filepath.Join(root, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(code))
	for m := range code {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		if !onDashboard[m] {
			t.Errorf("%s (registered in %s) is not on the dashboard", m, code[m])
		}
		if !strings.Contains(string(docs), "`"+m+"`") {
			t.Errorf("%s (registered in %s) is not documented in docs/operations.md", m, code[m])
		}
	}
}
