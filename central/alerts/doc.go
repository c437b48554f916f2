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
// Evaluation is cheap for events no rule can match, and for rules made of
// literal tests. Each condition is analysed once for the values of the
// action, outcome, actor, user, group, host and system it can be true for
// (literals and var.NAME lists in == and contains(), through && and ||):
// an event visits only the rules of its action, and only those whose
// guards its index fields pass. A condition that is nothing but a
// conjunction of such tests, and a group_by or same that only names those
// fields, are decided from the fields without building the HCL view of the
// event; given events as central's index holds them (EvaluateStored), the
// engine reads names from the JSON with a small scanner and decodes an
// event only for a rule that needs HCL. Rule state is written every save
// interval and when an alert fires, not per event.
package alerts
