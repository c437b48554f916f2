package event

import (
	"strconv"
	"strings"
	"time"
)

// ECS projects e onto Elastic Common Schema fields, as a nested map ready to
// marshal as JSON. The projection is lossy and is never what is signed: the
// signed artefact is always the schema v1 event.
//
// Root user.* is the actor, user.target.* the target user, group.* the
// target group, user.changes.* the new values (ECS 8+ conventions).
func (e *Event) ECS() map[string]any {
	info, _ := e.Action.Info()
	doc := map[string]any{
		"@timestamp": e.Time.UTC().Format(time.RFC3339Nano),
		"ecs":        map[string]any{"version": "8.17.0"},
	}
	ev := map[string]any{
		"id":       e.ID,
		"kind":     "event",
		"category": []string{"iam"},
		"type":     info.ECSType,
		"action":   string(e.Action),
		"outcome":  string(e.Outcome),
		"severity": severityNumber(e.Severity),
		"created":  e.ObservedTime.UTC().Format(time.RFC3339Nano),
		"module":   e.Source.Collector,
		"provider": e.Origin.System,
	}
	if e.Source.Instance != "" {
		ev["dataset"] = e.Source.Collector + "." + e.Source.Instance
	}
	if e.Raw != "" {
		ev["original"] = e.Raw
	}
	doc["event"] = ev

	user := map[string]any{}
	putNonEmpty(user, "name", e.Actor.Name)
	putNonEmpty(user, "id", firstNonEmpty(e.Actor.ID, uidString(e.Actor.UID)))
	if t := e.Target.User; t != nil {
		target := map[string]any{}
		putNonEmpty(target, "name", t.Name)
		putNonEmpty(target, "id", firstNonEmpty(t.ID, uidString(t.UID)))
		putNonEmpty(target, "email", t.Email)
		if g := e.Target.Group; g != nil {
			target["group"] = ecsGroup(g)
		}
		user["target"] = target
	}
	if len(e.Changes) > 0 {
		changes := map[string]any{}
		for _, c := range e.Changes {
			if c.Field == "name" {
				changes["name"] = c.New
			}
		}
		if len(changes) > 0 {
			user["changes"] = changes
		}
	}
	if e.Actor.OnBehalfOf != "" {
		user["effective"] = map[string]any{"name": e.Actor.OnBehalfOf}
	}
	if len(user) > 0 {
		doc["user"] = user
	}
	if g := e.Target.Group; g != nil {
		doc["group"] = ecsGroup(g)
	}
	if e.Origin.Host != "" {
		doc["host"] = map[string]any{"name": e.Origin.Host, "hostname": e.Origin.Host}
	}
	if e.Origin.IP != "" {
		doc["source"] = map[string]any{"ip": e.Origin.IP}
	}
	if e.Origin.UserAgent != "" {
		doc["user_agent"] = map[string]any{"original": e.Origin.UserAgent}
	}
	if e.Origin.Program != "" || e.Origin.PID != 0 {
		proc := map[string]any{}
		putNonEmpty(proc, "name", e.Origin.Program)
		if e.Origin.PID != 0 {
			proc["pid"] = e.Origin.PID
		}
		doc["process"] = proc
	}
	if e.Source.File != "" {
		logf := map[string]any{"file": map[string]any{"path": e.Source.File}}
		if e.Source.Offset != nil {
			logf["offset"] = *e.Source.Offset
		}
		doc["log"] = logf
	}
	if len(e.Target.Privileges) > 0 {
		doc["labels"] = map[string]any{"privileges": strings.Join(e.Target.Privileges, ",")}
	}
	return doc
}

func ecsGroup(g *Group) map[string]any {
	m := map[string]any{}
	putNonEmpty(m, "name", g.Name)
	putNonEmpty(m, "id", firstNonEmpty(g.ID, uidString(g.GID)))
	return m
}

func severityNumber(s Severity) int {
	switch s {
	case SeverityLow:
		return 2
	case SeverityMedium:
		return 3
	case SeverityHigh:
		return 4
	case SeverityCritical:
		return 5
	default:
		return 1
	}
}

func putNonEmpty(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func uidString(p *int64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatInt(*p, 10)
}
