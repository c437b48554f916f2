package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline's Prometheus metrics. Create them with
// NewMetrics on the registry of one agent instance; a nil *Metrics records
// nothing.
type Metrics struct {
	RecordsIn       *prometheus.CounterVec
	RecordsOut      *prometheus.CounterVec
	LastRecord      *prometheus.GaugeVec
	EventLag        *prometheus.GaugeVec
	Redactions      prometheus.Counter
	EncodeErrors    prometheus.Counter
	Batches         *prometheus.CounterVec
	BatchEvents     prometheus.Histogram
	EmitBlocked     prometheus.Counter
	SealErrors      prometheus.Counter
	ForwardBatches  *prometheus.CounterVec
	ForwardErrors   *prometheus.CounterVec
	ForwardSetAside prometheus.Counter
	ForwardLag      prometheus.Gauge
	LastAck         prometheus.Gauge
	ProofsVerified  prometheus.Counter
	ProofFailures   *prometheus.CounterVec
	ProofBacklog    prometheus.Gauge
	LogTreeSize     prometheus.Gauge
}

// NewMetrics creates and registers the pipeline metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		RecordsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provtrail_agent_records_in_total", Help: "Records emitted by each collector instance.",
		}, []string{"collector"}),
		RecordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provtrail_agent_records_out_total", Help: "Records of each collector instance written to the spool in a signed batch.",
		}, []string{"collector"}),
		LastRecord: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "provtrail_agent_collector_last_record_timestamp_seconds", Help: "When each collector instance last emitted a record (Unix time).",
		}, []string{"collector"}),
		EventLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "provtrail_agent_collector_event_lag_seconds", Help: "For each collector instance's latest record: seconds from the change (event time) to the agent reading it.",
		}, []string{"collector"}),
		Redactions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "provtrail_agent_redactions_total", Help: "Secret-looking values the pipeline replaced that a collector had let through.",
		}),
		EncodeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "provtrail_agent_encode_errors_total", Help: "Events that could not be encoded as JSON and were skipped.",
		}),
		Batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provtrail_agent_batches_total", Help: "Batches signed and spooled, by kind (events, heartbeat, resealed).",
		}, []string{"kind"}),
		BatchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "provtrail_agent_batch_events", Help: "Events per spooled batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		EmitBlocked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "provtrail_agent_emit_blocked_seconds_total", Help: "Time collectors spent waiting for the pipeline (backpressure).",
		}),
		SealErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "provtrail_agent_seal_errors_total", Help: "Batches that could not be signed or spooled.",
		}),
		ForwardBatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provtrail_agent_forward_batches_total", Help: "Batches central answered, by verdict.",
		}, []string{"verdict"}),
		ForwardErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provtrail_agent_forward_errors_total", Help: "Failed deliveries, by reason (network, server, throttled, client, rejected).",
		}, []string{"reason"}),
		ForwardSetAside: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "provtrail_agent_forward_set_aside_total", Help: "Batches central rejected as malformed or forged, kept under state_dir/rejected.",
		}),
		ForwardLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "provtrail_agent_forward_lag_seconds", Help: "Age of the oldest batch not yet acknowledged by central (0 when none).",
		}),
		LastAck: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "provtrail_agent_last_ack_timestamp_seconds", Help: "When central last acknowledged a batch (Unix time).",
		}),
		ProofsVerified: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "provtrail_agent_proofs_verified_total", Help: "Acknowledged batches whose inclusion in central's transparency log the agent verified.",
		}),
		ProofFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provtrail_agent_log_check_failures_total", Help: "Checks of central's transparency log that failed, by check (checkpoint, consistency, inclusion, leaf, missing): evidence of a rewritten or lying log.",
		}, []string{"check"}),
		ProofBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "provtrail_agent_proof_backlog", Help: "Acknowledged batches waiting for their inclusion proof.",
		}),
		LogTreeSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "provtrail_agent_log_tree_size", Help: "Tree size of the newest checkpoint of central's log the agent verified.",
		}),
	}
	reg.MustRegister(m.RecordsIn, m.RecordsOut, m.LastRecord, m.EventLag, m.Redactions, m.EncodeErrors, m.Batches, m.BatchEvents,
		m.EmitBlocked, m.SealErrors, m.ForwardBatches, m.ForwardErrors, m.ForwardSetAside, m.ForwardLag, m.LastAck,
		m.ProofsVerified, m.ProofFailures, m.ProofBacklog, m.LogTreeSize)
	return m
}
