#!/bin/sh
# Prints provtrail's performance figures on this machine: the auth-file
# parser, signing and verification, the agent from file to acknowledged
# batch (events/s, CPU-seconds per 100k events, peak RSS), central ingest,
# and alert-rule evaluation. See bench/README.md for what each measures.
# Figures on a shared machine vary with its load; the load average is
# printed first so runs can be compared.
set -eu
cd "$(dirname "$0")/.."
GO=${GO:-go}
BENCHTIME=${BENCHTIME:-1x}

section() { printf '\n== %s\n' "$*"; }
bench() { # package, pattern, benchtime
	$GO test -run '^$' -bench "$2" -benchtime "$3" -benchmem "$1" 2>&1 | grep -E '^(Benchmark|ok|FAIL|---)' || true
}

section "machine"
printf 'load average: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'cpus: %s, %s\n' "$(nproc)" "$($GO version)"

section "authlog parser (target >= 1,000,000 lines/s on one core)"
bench ./collectors/authlog 'BenchmarkParse' 20x

section "host collectors: tailing throughput, auditd and journald parsing, idle watcher cost"
bench ./collectors/internal/tail 'BenchmarkFollow|BenchmarkRun' 5x
bench ./collectors/auditd 'BenchmarkParse' 5x
bench ./collectors/journald 'BenchmarkParse' 5x
bench ./collectors/accounts 'BenchmarkIdlePoll|BenchmarkSnapshotDiff' 20x
bench ./collectors/accounts 'BenchmarkIdleCollector' 10x

section "LDAP: a 10,000-change backlog from a real slapd (accesslog), recorded 389-DS changelog"
bench ./collectors/ldap/accesslog 'BenchmarkSyncBacklog' 1x
bench ./collectors/ldap/changelog 'BenchmarkReal389DS' 20x

section "signer: seal and verify 500-event batches (target well under 5 us/event)"
bench ./signer . 50x

section "agent: auth log file -> signed, spooled (fsync), acknowledged batch"
PROVTRAIL_BENCH=1 PROVTRAIL_BENCH_EVENTS=${PROVTRAIL_BENCH_EVENTS:-200000} \
	$GO test -count=1 -run TestAgentThroughput -v ./bench/agent/ 2>&1 | grep -vE '^(=== RUN|--- PASS|PASS)' || true

section "central: ingest (verify, log, store) from 16 parallel streams"
bench ./central 'BenchmarkIngest$' 1x
section "central: a steady 50,000 events/s for 10 s (index backlog, p99 ack at that load)"
bench ./central 'BenchmarkIngestSustained' 1x

section "central: first page of queries and entitlements on 320,000 indexed events"
bench ./central 'BenchmarkQuery' 20x

section "central: alert rules (50 rules) over the ingest path"
bench ./central/alerts 'BenchmarkEvaluate50Rules' 20x
bench ./central 'BenchmarkIngestRules' 1x
