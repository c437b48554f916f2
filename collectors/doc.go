// Package collectors holds the contract every provisioning-event source
// meets: a Collector runs from an opaque resume Position and emits Records
// of {Event, Position}; a Factory creates one from its own HCL block. The
// list of known collector types lives in collectors/all, so that adding a
// source is one new folder under collectors/ plus one line there.
package collectors
