package central

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are central's Prometheus metrics, in their own registry. A nil
// *Metrics records nothing.
type Metrics struct {
	Registry   *prometheus.Registry
	batches    *prometheus.CounterVec
	events     prometheus.Counter
	badEvents  prometheus.Counter
	alerts     *prometheus.CounterVec
	latency    prometheus.Histogram
	phases     *prometheus.HistogramVec
	inflight   prometheus.Gauge
	overloaded prometheus.Counter
}

// NewMetrics registers central's metrics (and the Go/process collectors)
// in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provtrail_central_batches_total", Help: "Batches judged, by verdict (retry: not judged).",
		}, []string{"verdict"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "provtrail_central_events_stored_total", Help: "Events stored.",
		}),
		badEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "provtrail_central_unparsed_events_total", Help: "Body lines of accepted batches that are not schema events (stored unindexed).",
		}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provtrail_central_evidence_alerts_total", Help: "Built-in alerts raised by ingest (fork, forgery, gap), by kind.",
		}, []string{"kind"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "provtrail_central_ingest_seconds", Help: "Time from a batch's arrival to its receipt.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "provtrail_central_ingest_phase_seconds", Help: "Time an accepted batch spends in each ingest phase (verify, log, store).",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"phase"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "provtrail_central_requests_in_flight", Help: "Batch requests being processed.",
		}),
		overloaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "provtrail_central_overloaded_total", Help: "Batch requests answered 503 because the concurrency limit was reached.",
		}),
	}
	m.Registry.MustRegister(m.batches, m.events, m.badEvents, m.alerts, m.latency, m.phases, m.inflight, m.overloaded,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) observeIngest(r *Receipt, d time.Duration) {
	if m == nil {
		return
	}
	v := "retry"
	if !r.Retry && r.Verdict != 0 {
		v = r.Verdict.String()
	}
	m.batches.WithLabelValues(v).Inc()
	m.events.Add(float64(r.EventsStored))
	m.latency.Observe(d.Seconds())
}

func (m *Metrics) badEvent() {
	if m != nil {
		m.badEvents.Inc()
	}
}

func (m *Metrics) alert(kind string) {
	if m != nil {
		m.alerts.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) inflightAdd(d float64) {
	if m != nil {
		m.inflight.Add(d)
	}
}

func (m *Metrics) overload() {
	if m != nil {
		m.overloaded.Inc()
	}
}

func (m *Metrics) phase(name string, start time.Time) time.Time {
	now := time.Now()
	if m != nil {
		m.phases.WithLabelValues(name).Observe(now.Sub(start).Seconds())
	}
	return now
}

// watchIndexBacklog exports the number of stored events that wait to be
// indexed (backlog reports it).
func (m *Metrics) watchIndexBacklog(backlog func() int) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "provtrail_central_index_backlog_events",
		Help: "Stored (acknowledged) events not yet indexed: not yet queryable, nor applied to the entitlements.",
	}, func() float64 { return float64(backlog()) }))
}

// PhaseTotals returns the total seconds and count observed per ingest
// phase (for benchmarks and diagnostics).
func (m *Metrics) PhaseTotals() map[string][2]float64 {
	out := map[string][2]float64{}
	mfs, err := m.Registry.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != "provtrail_central_ingest_phase_seconds" {
			continue
		}
		for _, mm := range mf.GetMetric() {
			h := mm.GetHistogram()
			out[mm.GetLabel()[0].GetValue()] = [2]float64{h.GetSampleSum(), float64(h.GetSampleCount())}
		}
	}
	return out
}
