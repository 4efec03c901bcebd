package nodeapi

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/ledger/neuro"
	"github.com/neuroshard/neuroshard/tasks"
)

// The network views and analytics (seeds 000 and 002), from what this node actually knows:
// provider records in the DHT (who holds which layers), its connections (latency, agent),
// gossiped training reports (round, loss, when), its own forward sessions (load) and its own
// tasks. What no peer reports (GPU, region, owner, earnings) is null, never invented.

// Nodes implements httpapi.Insights.
func (a *API) Nodes(ctx context.Context) []apitypes.NodeView {
	cov := a.cov.Get(ctx)
	held := cov.ByPeer()
	connected := map[peer.ID]bool{}
	views := map[string]*apitypes.NodeView{}
	view := func(id string) *apitypes.NodeView {
		if v, ok := views[id]; ok {
			return v
		}
		v := &apitypes.NodeView{ID: id, Status: "offline", Capabilities: []string{}, Layers: []int{}}
		views[id] = v
		return v
	}
	now := time.Now().UTC()
	for id, ls := range held {
		v := view(id.String())
		v.Layers = ls
	}
	for _, p := range a.host.Peers() {
		connected[p.ID] = true
		v := view(p.ID.String())
		v.Status, v.LastSeen, v.AgentVersion = "online", now.Format(time.RFC3339), p.AgentVersion
		v.LatencyMS = float64(p.Latency.Microseconds()) / 1000
	}
	for p, pt := range a.node.Training().Reports {
		v := view(p.String())
		v.Round, v.Loss = pt.Report.Round, pt.Report.Loss
		if pt.Fresh {
			v.Status = "online"
			if v.LastSeen == "" {
				v.LastSeen = pt.At.UTC().Format(time.RFC3339)
			}
		}
		v.Capabilities = append(v.Capabilities, "training")
	}

	self := view(a.node.ID())
	self.Self, self.Status, self.LastSeen, self.AgentVersion = true, "online", now.Format(time.RFC3339), "neuroshard/"+a.version
	if a.node.Stage() != nil {
		self.Layers = a.node.Span().Indices()
	}
	if st, err := a.tasks.Stats(time.Time{}); err == nil {
		done := st.Completed
		self.TasksProcessed, self.TotalTasksCompleted = &done, &done
	}
	if started := a.node.Started(); !started.IsZero() {
		up := time.Since(started)
		s := fmt.Sprintf("%dd %dh %dm", int(up.Hours())/24, int(up.Hours())%24, int(up.Minutes())%60)
		self.Uptime = &s
	}
	totalSessions := 0
	using := a.pipe.Using()
	for _, c := range using {
		totalSessions += c
	}
	for p, c := range using {
		view(p.String()).Load = float64(c) / float64(totalSessions)
	}

	// Performance: each node's measured decode speed against the fastest known.
	records := cov.Records
	best := 0.0
	for _, r := range records {
		best = max(best, r.Throughput.Decode)
	}
	for id, r := range records {
		if d := r.Throughput.Decode; d > 0 && best > 0 {
			v := view(id.String())
			score := math.Round(1000*d/best) / 10
			v.PerformanceScore, v.DecodeTokensPerS = &score, math.Round(d*10)/10
		}
	}

	out := make([]apitypes.NodeView, 0, len(views))
	ps := a.host.Libp2p().Peerstore()
	for id, v := range views {
		if len(v.Layers) > 0 {
			v.Capabilities = append([]string{"text-generation"}, v.Capabilities...)
		}
		slices.Sort(v.Capabilities)
		v.Capabilities = slices.Compact(v.Capabilities)
		if v.Self {
			v.Addrs = a.host.Addrs()
		} else if pid, err := peer.Decode(id); err == nil {
			for _, a := range ps.Addrs(pid) {
				v.Addrs = append(v.Addrs, a.String())
			}
		}
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func online(nodes []apitypes.NodeView) int {
	c := 0
	for _, v := range nodes {
		if v.Status == "online" {
			c++
		}
	}
	return c
}

// NetworkStatus implements httpapi.Insights.
func (a *API) NetworkStatus(ctx context.Context) apitypes.NetworkStatus {
	nodes := a.Nodes(ctx)
	st, _ := a.tasks.Stats(time.Time{})
	counts := a.tasks.Counts()
	w := windowOf(st)
	return apitypes.NetworkStatus{Success: true, Timestamp: time.Now().UTC().Format(time.RFC3339), Nodes: nodes,
		Stats: map[string]any{"total_compute_time": fmt.Sprintf("%.0fs", w.ComputeSeconds), "beta_signups": nil, "total_savings": nil},
		Network: map[string]any{"nodes_online": online(nodes), "nodes_known": len(nodes), "total_tasks": st.Created,
			"completed_tasks": st.Completed, "queued_tasks": counts.Queued, "running_tasks": counts.Running,
			"success_rate": w.SuccessRate, "avg_response_time": fmt.Sprintf("%.1fs", w.AvgResponseTime),
			"model": a.model.Name, "coverage_complete": a.cov.Get(ctx).Complete,
			// Seed 000's figures nobody measures (another provider's price, a service-wide uptime)
			// are present as null.
			"cost_savings_vs_openai": nil, "uptime": nil}}
}

// ServiceHealth implements httpapi.Insights.
func (a *API) ServiceHealth(ctx context.Context) apitypes.ServiceHealth {
	h := a.Health(ctx)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	started := a.node.Started()
	up := time.Since(started)
	if started.IsZero() {
		up = 0
	}
	st, _ := a.tasks.Stats(time.Time{})
	status := "OK"
	if !h.Healthy {
		status = "DEGRADED"
	}
	return apitypes.ServiceHealth{Status: status, Service: "NeuroShard", Version: a.version, Environment: string(a.host.Config().Profile),
		Timestamp: time.Now().UTC().Format(time.RFC3339), Uptime: int64(up.Seconds()), UptimeHuman: up.Round(time.Second).String(),
		Memory: map[string]any{"used": fmt.Sprintf("%dMB", ms.HeapAlloc>>20), "total": fmt.Sprintf("%dMB", ms.Sys>>20)},
		Network: map[string]any{"nodes_online": online(a.Nodes(ctx)), "total_tasks": st.Created, "peers": len(a.host.Peers()),
			"beta_signups": nil}} // a website's figure: null
}

// windowOf summarises task stats.
func windowOf(st tasks.Stats) apitypes.AnalyticsWindow {
	w := apitypes.AnalyticsWindow{TasksCreated: st.Created, TasksCompleted: st.Completed, TasksFailed: st.Failed, TasksCancelled: st.Cancelled,
		TokensGenerated: st.TokensUsed, TotalCost: neuro.Amount(st.Cost)}
	if done := st.Completed + st.Failed; done > 0 {
		w.SuccessRate = 100 * float64(st.Completed) / float64(done)
	}
	if len(st.RunTimes) > 0 {
		rt := slices.Clone(st.RunTimes)
		slices.Sort(rt)
		var sum time.Duration
		for _, d := range rt {
			sum += d
		}
		w.ComputeSeconds = sum.Seconds()
		w.AvgResponseTime = sum.Seconds() / float64(len(rt))
		w.P50ResponseTime = rt[len(rt)/2].Seconds()
		w.P95ResponseTime = rt[min(len(rt)-1, len(rt)*95/100)].Seconds()
	}
	return w
}

// Analytics implements httpapi.Insights.
func (a *API) Analytics(ctx context.Context, since time.Time) (apitypes.AnalyticsWindow, error) {
	st, err := a.tasks.Stats(since)
	if err != nil {
		return apitypes.AnalyticsWindow{}, taskError(err, "")
	}
	w := windowOf(st)
	nodes := a.Nodes(ctx)
	w.Since, w.TotalNodes, w.ActiveNodes = since.UTC().Format(time.RFC3339), len(nodes), online(nodes)
	w.TotalTasksToday, w.TotalComputeHours = w.TasksCreated, math.Round(w.ComputeSeconds/3600*1000)/1000
	w.InferenceMetrics = a.Metrics(ctx)
	return w, nil
}
