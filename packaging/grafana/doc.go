// Package grafana holds provtrail's Grafana dashboard
// (provtrail-dashboard.json, importable as is). It has no code: its test
// keeps the dashboard, the Prometheus alert rules in ../prometheus and the
// metric reference in docs/operations.md in step with the metrics that
// agent/, pipeline/ and central/ register.
package grafana
