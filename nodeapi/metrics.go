package nodeapi

import (
	"context"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// latencyWindow is how many recent requests the latency figures cover.
const latencyWindow = 1024

type inferenceMetrics struct {
	mu        sync.Mutex
	total     int64
	tokens    int64
	failovers int64
	audits    map[string]int64 // by verdict
	recent    []time.Time      // request completions in the last minute
	lat       []float64        // ring of recent latencies, ms
	next      int
}

func (m *inferenceMetrics) record(latency time.Duration, tokens int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.total++
	m.tokens += int64(tokens)
	m.recent = append(m.recent, now)
	ms := float64(latency.Microseconds()) / 1000
	if len(m.lat) < latencyWindow {
		m.lat = append(m.lat, ms)
	} else {
		m.lat[m.next] = ms
		m.next = (m.next + 1) % latencyWindow
	}
}

func (m *inferenceMetrics) audited(verdict string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.audits == nil {
		m.audits = map[string]int64{}
	}
	m.audits[verdict]++
}

func (m *inferenceMetrics) failover() {
	m.mu.Lock()
	m.failovers++
	m.mu.Unlock()
}

// Metrics implements httpapi.Backend.
func (a *API) Metrics(ctx context.Context) apitypes.Metrics {
	m := &a.metrics
	m.mu.Lock()
	cut := time.Now().Add(-time.Minute)
	i := 0
	for i < len(m.recent) && m.recent[i].Before(cut) {
		i++
	}
	m.recent = m.recent[i:]
	inf := apitypes.InferenceMetrics{RequestsTotal: m.total, RequestsPerMinute: float64(len(m.recent)),
		TokensGenerated: m.tokens, Failovers: m.failovers, QueueLength: a.tasks.Counts().Queued, Audits: maps.Clone(m.audits)}
	if inf.Audits == nil {
		inf.Audits = map[string]int64{}
	}
	if len(m.lat) > 0 {
		sorted := slices.Clone(m.lat)
		slices.Sort(sorted)
		sum := 0.0
		for _, x := range sorted {
			sum += x
		}
		inf.AvgLatencyMS = sum / float64(len(sorted))
		inf.P99LatencyMS = sorted[min(len(sorted)-1, len(sorted)*99/100)]
	}
	m.mu.Unlock()
	tr := a.host.Traffic()
	return apitypes.Metrics{
		Timestamp: time.Now().UTC().Format(time.RFC3339),
		Inference: inf,
		Training:  a.trainingMetrics(),
		Network: apitypes.NetworkMetrics{BytesSent: tr.BytesSent, BytesReceived: tr.BytesReceived,
			ActiveConnections: tr.Connections, RPCCalls: tr.ForwardSteps},
		Rewards: a.rewardMetrics(),
	}
}

// trainingMetrics is the node's own training: inner steps, their rate since the node started,
// and its pseudo-gradients: one per DiLoCo round it took part in, accepted when the round was
// applied with it.
func (a *API) trainingMetrics() apitypes.TrainingMetrics {
	v := a.node.Training()
	out := apitypes.TrainingMetrics{StepsTotal: v.InnerSteps, GradientsSubmitted: v.Round.OK + v.Round.Failed, GradientsAccepted: v.Round.OK}
	if started := a.node.Started(); !started.IsZero() {
		if h := time.Since(started).Hours(); h > 0 {
			out.StepsPerHour = math.Round(float64(v.InnerSteps)/h*10) / 10
		}
	}
	return out
}

// rewardMetrics is what the node's wallet earned by rewards: since midnight UTC, in all, and
// pending (0: a proof is rewarded when its transaction applies, nothing waits).
func (a *API) rewardMetrics() apitypes.RewardMetrics {
	me := a.wallet.Address()
	var out apitypes.RewardMetrics
	if acct, err := a.ledger.Account(me); err == nil {
		out.EarnedTotal = acct.Rewarded
	}
	now := time.Now().UTC()
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).UnixMilli()
	// Newest first: read pages until a reward older than today.
	for offset := 0; ; offset += rewardPage {
		entries, _, err := a.ledger.Rewards(me, rewardPage, offset)
		if err != nil || len(entries) == 0 {
			return out
		}
		for _, e := range entries {
			if e.Tx.Proof == nil || e.Tx.Proof.Time < midnight {
				return out
			}
			out.EarnedToday += e.Tx.Amount
		}
	}
}

// rewardPage is how many reward transactions rewardMetrics reads at a time.
const rewardPage = 256
