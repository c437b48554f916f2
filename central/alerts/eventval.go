package alerts

import (
	"maps"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/provtrail/provtrail/event"
)

// fieldTree is the set of event fields some rule refers to: a key with a
// nil subtree means the whole field. Building only those keeps evaluation
// cheap; cty objects cost an allocation per attribute.
type fieldTree map[string]fieldTree

// all is a tree that includes every field.
var allFields fieldTree

func (t fieldTree) has(k string) bool {
	if t == nil {
		return true
	}
	_, ok := t[k]
	return ok
}

func (t fieldTree) sub(k string) fieldTree {
	if t == nil {
		return nil
	}
	return t[k]
}

// addTraversals records the event fields the expressions refer to.
func (t fieldTree) addTraversals(exprs ...hcl.Expression) {
	for _, x := range exprs {
		if x == nil {
			continue
		}
		for _, tr := range x.Variables() {
			if tr.RootName() != "event" {
				continue
			}
			var path []string
			for _, step := range tr[1:] {
				attr, ok := step.(hcl.TraverseAttr)
				if !ok {
					break
				}
				path = append(path, attr.Name)
			}
			if len(path) == 0 {
				t["*"] = nil // the whole event
				continue
			}
			node := t
			for i, name := range path {
				child, seen := node[name]
				if seen && child == nil {
					break // already whole
				}
				if i == len(path)-1 {
					node[name] = nil
					break
				}
				if child == nil {
					child = fieldTree{}
					node[name] = child
				}
				node = child
			}
		}
	}
}

// eventValue converts an event to the cty object rules see as `event`,
// holding the fields in need (nil: all). The shape is fixed (absent strings
// are "", absent numbers null), so a rule can test event.target.group.name
// on an event without a group.
func eventValue(e *event.Event, need fieldTree) cty.Value {
	if _, whole := need["*"]; whole {
		need = nil
	}
	str := cty.StringVal
	num := func(p *int64) cty.Value {
		if p == nil {
			return cty.NullVal(cty.Number)
		}
		return cty.NumberIntVal(*p)
	}
	obj := func(need fieldTree, fields map[string]func() cty.Value) cty.Value {
		m := make(map[string]cty.Value, len(fields))
		for k, f := range fields {
			if need.has(k) {
				m[k] = f()
			}
		}
		return cty.ObjectVal(m)
	}
	top := map[string]cty.Value{}
	set := func(k string, f func() cty.Value) {
		if need.has(k) {
			top[k] = f()
		}
	}
	set("id", func() cty.Value { return str(e.ID) })
	set("time", func() cty.Value { return str(e.Time.UTC().Format(time.RFC3339Nano)) })
	set("observed_time", func() cty.Value { return str(e.ObservedTime.UTC().Format(time.RFC3339Nano)) })
	set("action", func() cty.Value { return str(string(e.Action)) })
	set("outcome", func() cty.Value { return str(string(e.Outcome)) })
	set("severity", func() cty.Value { return str(string(e.Severity)) })
	set("raw", func() cty.Value { return str(e.Raw) })
	set("actor", func() cty.Value {
		return obj(need.sub("actor"), map[string]func() cty.Value{
			"name": func() cty.Value { return str(e.Actor.Name) }, "id": func() cty.Value { return str(e.Actor.ID) },
			"uid": func() cty.Value { return num(e.Actor.UID) }, "type": func() cty.Value { return str(string(e.Actor.Type)) },
			"session": func() cty.Value { return str(e.Actor.Session) }, "auth": func() cty.Value { return str(e.Actor.Auth) },
			"on_behalf_of": func() cty.Value { return str(e.Actor.OnBehalfOf) },
		})
	})
	set("target", func() cty.Value {
		tn := need.sub("target")
		user := event.User{}
		if e.Target.User != nil {
			user = *e.Target.User
		}
		group := event.Group{}
		if e.Target.Group != nil {
			group = *e.Target.Group
		}
		return obj(tn, map[string]func() cty.Value{
			"user": func() cty.Value {
				return obj(tn.sub("user"), map[string]func() cty.Value{
					"name": func() cty.Value { return str(user.Name) }, "id": func() cty.Value { return str(user.ID) },
					"uid": func() cty.Value { return num(user.UID) }, "email": func() cty.Value { return str(user.Email) },
				})
			},
			"group": func() cty.Value {
				return obj(tn.sub("group"), map[string]func() cty.Value{
					"name": func() cty.Value { return str(group.Name) }, "id": func() cty.Value { return str(group.ID) },
					"gid": func() cty.Value { return num(group.GID) },
				})
			},
			"privileges": func() cty.Value {
				privs := make([]cty.Value, len(e.Target.Privileges))
				for i, p := range e.Target.Privileges {
					privs[i] = str(p)
				}
				return listOrEmpty(privs, cty.String)
			},
		})
	})
	set("origin", func() cty.Value {
		return obj(need.sub("origin"), map[string]func() cty.Value{
			"system": func() cty.Value { return str(e.Origin.System) }, "instance": func() cty.Value { return str(e.Origin.Instance) },
			"host": func() cty.Value { return str(e.Origin.Host) }, "ip": func() cty.Value { return str(e.Origin.IP) },
			"user_agent": func() cty.Value { return str(e.Origin.UserAgent) }, "tty": func() cty.Value { return str(e.Origin.TTY) },
			"program": func() cty.Value { return str(e.Origin.Program) }, "pid": func() cty.Value { return cty.NumberIntVal(int64(e.Origin.PID)) },
		})
	})
	set("changes", func() cty.Value {
		changeType := cty.Object(map[string]cty.Type{"field": cty.String, "old": cty.String, "new": cty.String})
		changes := make([]cty.Value, len(e.Changes))
		for i, c := range e.Changes {
			changes[i] = cty.ObjectVal(map[string]cty.Value{"field": str(c.Field), "old": str(c.Old), "new": str(c.New)})
		}
		return listOrEmpty(changes, changeType)
	})
	set("source", func() cty.Value {
		return obj(need.sub("source"), map[string]func() cty.Value{
			"collector": func() cty.Value { return str(e.Source.Collector) }, "instance": func() cty.Value { return str(e.Source.Instance) },
			"file": func() cty.Value { return str(e.Source.File) }, "offset": func() cty.Value { return num(e.Source.Offset) },
			"cursor": func() cty.Value { return str(e.Source.Cursor) }, "event_id": func() cty.Value { return str(e.Source.EventID) },
		})
	})
	set("ocsf", func() cty.Value {
		return obj(need.sub("ocsf"), map[string]func() cty.Value{
			"class_uid": func() cty.Value { return cty.NumberIntVal(int64(e.OCSF.ClassUID)) }, "activity_id": func() cty.Value { return cty.NumberIntVal(int64(e.OCSF.ActivityID)) },
			"type_uid": func() cty.Value { return cty.NumberIntVal(int64(e.OCSF.TypeUID)) }, "category_uid": func() cty.Value { return cty.NumberIntVal(int64(e.OCSF.CategoryUID)) },
		})
	})
	return cty.ObjectVal(top)
}

func listOrEmpty(vs []cty.Value, elem cty.Type) cty.Value {
	if len(vs) == 0 {
		return cty.ListValEmpty(elem)
	}
	return cty.ListVal(vs)
}

func sampleEvent() *event.Event {
	return &event.Event{Target: event.Target{User: &event.User{}, Group: &event.Group{}, Privileges: []string{"x"}}}
}

// ruleContext is the evaluation context of rules: the config file's
// functions (env, file) plus the standard library, and var.
func ruleContext(parent *hcl.EvalContext, vars map[string]cty.Value) *hcl.EvalContext {
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)}, Functions: Functions()}
	if parent != nil {
		maps.Copy(ctx.Functions, parent.Functions)
	}
	if len(vars) == 0 {
		ctx.Variables["var"] = cty.EmptyObjectVal
	}
	return ctx
}

func withEvent(ctx *hcl.EvalContext, e *event.Event, need fieldTree) *hcl.EvalContext {
	child := ctx.NewChild()
	child.Variables = map[string]cty.Value{"event": eventValue(e, need)}
	return child
}
