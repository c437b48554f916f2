// Package agent is the host daemon: it reads agent.hcl, runs the configured
// collectors through the pipeline (redact, batch, sign, spool, forward),
// commits their positions only once their records are spooled, and serves
// health and metrics. It handles SIGTERM (drain) and SIGHUP (reload).
package agent
