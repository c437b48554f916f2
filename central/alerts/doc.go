// Package alerts evaluates central's alert rules over stored events and
// delivers alerts to notifiers.
//
// Rules are HCL blocks in central.hcl: a `when` condition (an HCL expression
// over `event` and `var`), optionally a `threshold` (count within a window,
// per group_by key) or a `sequence` (a first then a then event sharing the
// `same` keys within a window). Rule state survives restarts through a
// StateStore. Built-in alerts (fork, forgery, gap, silent agent, ...) are
// raised by central through Engine.Raise and go through the same notifiers.
//
// Evaluation is cheap for events no rule can match: each `when` is analysed
// once for the actions it can possibly match, and only those rules are
// evaluated for an event of that action.
package alerts
