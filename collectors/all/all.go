// Package all lists every collector type the provtrail binary knows. Adding
// a source is one new folder under collectors/ and one line here.
package all

import (
	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/accounts"
	"github.com/provtrail/provtrail/collectors/auditd"
	"github.com/provtrail/provtrail/collectors/authlog"
	"github.com/provtrail/provtrail/collectors/cloudtrail"
	"github.com/provtrail/provtrail/collectors/entra"
	"github.com/provtrail/provtrail/collectors/gcpaudit"
	"github.com/provtrail/provtrail/collectors/github"
	"github.com/provtrail/provtrail/collectors/journald"
	"github.com/provtrail/provtrail/collectors/ldap/accesslog"
	"github.com/provtrail/provtrail/collectors/ldap/changelog"
	"github.com/provtrail/provtrail/collectors/okta"
	"github.com/provtrail/provtrail/collectors/workspace"
)

// Factories returns the factories of every built-in collector type.
func Factories() []collectors.Factory {
	return []collectors.Factory{
		authlog.NewFactory(),
		accounts.NewFactory(),
		auditd.NewFactory(),
		journald.NewFactory(),
		accesslog.NewFactory(),
		changelog.NewFactory(),
		cloudtrail.NewFactory(),
		entra.NewFactory(),
		okta.NewFactory(),
		github.NewFactory(),
		gcpaudit.NewFactory(),
		workspace.NewFactory(),
	}
}

// Registry returns a registry of every built-in collector type.
func Registry() *collectors.Registry {
	r, err := collectors.NewRegistry(Factories()...)
	if err != nil {
		// The list above is fixed at compile time; a duplicate is a
		// programming error that every test run catches.
		panic(err)
	}
	return r
}
