package nodeapi

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/neuroshard/neuroshard/coverage"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// The node answers the REST API: these methods implement httpapi.Backend (api_test.go holds
// the node to it).

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Status implements httpapi.Backend.
func (a *API) Status(ctx context.Context) apitypes.Status {
	span := a.node.Span()
	started := a.node.Started()
	uptime := int64(0)
	if !started.IsZero() {
		uptime = int64(time.Since(started).Seconds())
	}
	return apitypes.Status{
		NodeID:        a.node.ID(),
		Version:       a.version,
		UptimeSeconds: uptime,
		Status:        a.node.State(),
		Role:          roleOf(span.Indices(), a.model.Layers),
		Layers:        span.Indices(),
		PeerCount:     len(a.host.Peers()),
		Training:      a.trainingStatus(),
		Resources:     apitypes.Resources{CPUPercent: a.cpu.percent(), RAMUsed: residentBytes()},
		Multiaddrs:    a.host.Addrs(),
		Model:         a.model.Name,
		ModelHash:     a.modelHash(),
		APIPort:       a.apiPort(),
		P2PPort:       a.p2pPort(),
		Benchmark:     benchmark(a.node.Benchmark()),
		Reachability:  a.host.Reachability(),
		RelayAddrs:    a.host.RelayAddrStrings(),
		RelayService:  a.host.RelayService(),
		Rebalance:     a.rebalance(span),
	}
}

// rebalance asks the balance rule about the last coverage view (no lookup).
func (a *API) rebalance(span layers.Span) *apitypes.RebalanceAdvice {
	if a.node.Stage() == nil {
		return nil
	}
	m, ok := coverage.Rebalance(a.model, a.cov.Last(), a.host.ID(), span, a.node.MemoryBudget(), coverage.MoveThreshold)
	if !ok {
		return nil
	}
	return &apitypes.RebalanceAdvice{From: m.From.String(), To: m.To.String(), TokensPerSNow: round1(m.Now), TokensPerSAfter: round1(m.After)}
}

func benchmark(r *layers.BenchResult) *apitypes.Benchmark {
	if r == nil {
		return nil
	}
	b := apitypes.Benchmark(*r)
	return &b
}

// modelHash is the hash of the weights the node serves ("" before Start): a snapshot, so the
// status never waits on a computation.
func (a *API) modelHash() string { return a.node.ServedHash() }

func (a *API) apiPort() int { return a.node.APIPort() }

func (a *API) p2pPort() int {
	for _, a := range a.host.Libp2p().Addrs() {
		if v, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			if port, err := strconv.Atoi(v); err == nil {
				return port
			}
		}
	}
	return 0
}

// Health implements httpapi.Backend: the node is healthy when it listens and can write its
// data dir; having no peers is reported but is not unhealthy (a standalone node is fine).
func (a *API) Health(ctx context.Context) apitypes.Health {
	checks := map[string]string{"gpu": "not used (CPU backend)", "network": "ok", "storage": "ok", "peers": "ok"}
	healthy := true
	if len(a.host.Libp2p().Addrs()) == 0 {
		checks["network"], healthy = "not listening", false
	}
	if err := a.node.CheckDataDir(); err != nil {
		checks["storage"], healthy = err.Error(), false
	}
	if len(a.host.Peers()) == 0 {
		checks["peers"] = "no peers connected"
	}
	if s := a.node.State(); s != "running" {
		checks["node"], healthy = s, false
	}
	return apitypes.Health{Healthy: healthy, Checks: checks}
}

// Peers implements httpapi.Backend: connected peers, with the layers the DHT says they hold.
func (a *API) Peers(ctx context.Context) apitypes.PeerList {
	held := a.cov.Get(ctx).ByPeer()
	excluded, passed := a.pipe.Excluded(), a.pipe.AuditsPassed()
	list := apitypes.PeerList{Peers: []apitypes.Peer{}}
	for _, p := range a.host.Peers() {
		ls := held[p.ID]
		if ls == nil {
			ls = []int{}
		}
		e := apitypes.Peer{
			ID:             p.ID.String(),
			Address:        p.Addr.String(),
			Layers:         ls,
			LatencyMS:      ms(p.Latency),
			ConnectedSince: p.ConnectedSince.UTC().Format(time.RFC3339),
			AgentVersion:   p.AgentVersion,
		}
		if len(ls) > 0 {
			e.Role = roleOf(ls, a.model.Layers)
		}
		e.Excluded, e.AuditsPassed, e.Stake = excluded[p.ID].Reason, passed[p.ID], a.stakeOf(p.ID)
		delete(excluded, p.ID)
		list.Peers = append(list.Peers, e)
	}
	for id, x := range excluded { // excluded and no longer connected: still shown, with why
		list.Peers = append(list.Peers, apitypes.Peer{ID: id.String(), Layers: []int{}, Excluded: x.Reason, AuditsPassed: passed[id]})
	}
	list.Total = len(list.Peers)
	return list
}

// Layers implements httpapi.Backend.
func (a *API) Layers(ctx context.Context) apitypes.LayerList {
	span := a.node.Span()
	out := apitypes.LayerList{Layers: []apitypes.Layer{}, TotalLayers: a.model.Layers, MyLayerCount: span.Len()}
	if a.node.State() != "running" {
		out.MyLayerCount = 0
		return out
	}
	for _, i := range span.Indices() {
		typ := "transformer"
		switch {
		case i == 0 && i == a.model.Layers-1:
			typ = "embedding+transformer+lm_head"
		case i == 0:
			typ = "embedding+transformer"
		case i == a.model.Layers-1:
			typ = "transformer+lm_head"
		}
		mem := a.model.SpanMemoryBytes(layers.Span{First: i, Last: i}) // the embedding or head included
		out.Layers = append(out.Layers, apitypes.Layer{Index: i, Type: typ, MemoryMB: (mem + (1 << 20) - 1) >> 20, Status: "active"})
	}
	return out
}

// Network implements httpapi.Backend: node counts come from the DHT's coverage view.
func (a *API) Network(ctx context.Context) apitypes.Network {
	view := a.cov.Get(ctx)
	var counts apitypes.NodeCounts
	for _, ls := range view.ByPeer() {
		counts.Total++
		switch roleOf(ls, a.model.Layers) {
		case RoleDriver:
			counts.Drivers++
		case RoleValidator:
			counts.Validators++
		default:
			counts.Workers++
		}
	}
	m := a.model
	var tr *apitypes.NetworkTraining
	if g := a.TrainingGlobal(ctx); g.TotalNodesTraining > 0 {
		tr = &apitypes.NetworkTraining{Epoch: a.newestRound(), GlobalStep: g.GlobalSteps, Loss: g.GlobalAvgLoss}
	}
	c := view.Capacity()
	return apitypes.Network{
		Training: tr,
		Nodes:    counts,
		Capacity: apitypes.Capacity{TotalMemoryGB: gb(c.MemoryBytes), UsedMemoryGB: gb(c.UsedBytes), DecodeTokensPerS: round1(c.Decode),
			DecodeBatch8TokensPerS: round1(c.DecodeBatch8), LayerTokensPerS: roundAll(c.Layers), NodesRecorded: c.Recorded, NodesMeasured: c.Measured},
		Architecture: apitypes.Architecture{Model: m.Name, Layers: m.Layers, HiddenDim: m.DModel, Heads: m.Heads,
			Vocab: m.Vocab, Context: m.Context, Parameters: layers.HumanParams(m.TotalParams())},
		Coverage: apiCoverage(view),
		Ledger:   a.ledgerView(),
	}
}

func (a *API) ledgerView() apitypes.NetworkLedger {
	minted, burned, seq := a.ledger.Supply()
	eq, _ := a.ledger.Equivocations(1000)
	p := a.ledger.Params()
	return apitypes.NetworkLedger{NetworkID: p.ID(), Transactions: seq, Minted: minted, Burned: burned,
		Circulating: minted - burned, Equivocations: len(eq), PricePerToken: p.PricePerToken}
}

// Config implements httpapi.Backend.
func (a *API) Config(ctx context.Context) apitypes.NodeConfig {
	s := a.settings.Get()
	boot := a.bootstrap
	if boot == nil {
		boot = []string{}
	}
	return apitypes.NodeConfig{
		NodeID:    a.node.ID(),
		Port:      a.apiPort(),
		GRPCPort:  a.p2pPort(),
		Bootstrap: boot,
		Training: apitypes.TrainingConfig{Enabled: s.Training.Enabled, BatchSize: s.Training.BatchSize,
			LearningRate: s.Training.LearningRate, DiLoCoSteps: s.Training.DiLoCoSteps, Compression: s.Training.Compression,
			OuterLR: s.Training.OuterLR, OuterMomentum: s.Training.OuterMomentum},
		Resources: apitypes.ResourcesConfig{MaxMemoryGB: s.Resources.MaxMemoryGB, CPUThreads: s.Resources.CPUThreads},
	}
}

// PatchConfig implements httpapi.Backend.
func (a *API) PatchConfig(ctx context.Context, p apitypes.ConfigPatch) (apitypes.ConfigPatchResult, error) {
	return a.settings.Apply(p)
}

// RoutingTable implements httpapi.Backend.
func (a *API) RoutingTable(ctx context.Context) apitypes.RoutingTable {
	connected := map[peer.ID]bool{}
	for _, p := range a.host.Peers() {
		connected[p.ID] = true
	}
	rt := apitypes.RoutingTable{Peers: []apitypes.DHTPeer{}}
	for _, id := range a.host.RoutingTable() {
		rt.Peers = append(rt.Peers, apitypes.DHTPeer{ID: id.String(), Connected: connected[id], LatencyMS: ms(a.host.Latency(id))})
	}
	rt.Size = len(rt.Peers)
	return rt
}

// Providers implements httpapi.Backend.
func (a *API) Providers(ctx context.Context, layer int) (apitypes.Providers, error) {
	if layer < 0 || layer >= a.model.Layers {
		return apitypes.Providers{}, apitypes.NotFound(fmt.Sprintf("layer %d does not exist: %s has layers 0-%d", layer, a.model.Name, a.model.Layers-1),
			map[string]any{"layer": layer, "total_layers": a.model.Layers})
	}
	key := coverage.LayerKey(a.model.Name, layer)
	provs, err := a.cov.Providers(ctx, layer)
	if err != nil {
		return apitypes.Providers{}, apitypes.NewError(http.StatusServiceUnavailable, apitypes.CodeNodeUnavailable, "provider lookup failed: "+err.Error(), nil)
	}
	out := apitypes.Providers{Layer: layer, Key: p2p.ContentKey(key).String(), Providers: []apitypes.Provider{}}
	for _, p := range provs {
		addrs := make([]string, 0, len(p.Addrs))
		for _, a := range p.Addrs {
			addrs = append(addrs, a.String())
		}
		out.Providers = append(out.Providers, apitypes.Provider{ID: p.ID.String(), Addrs: addrs, Self: p.ID == a.host.ID()})
	}
	return out, nil
}

// FindPeer implements httpapi.Backend.
func (a *API) FindPeer(ctx context.Context, id string) (apitypes.PeerAddrs, error) {
	pid, err := peer.Decode(id)
	if err != nil {
		return apitypes.PeerAddrs{}, apitypes.InvalidRequest("not a peer ID: "+err.Error(), map[string]any{"id": id})
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ai, err := a.host.FindPeer(ctx, pid)
	if err != nil {
		return apitypes.PeerAddrs{}, apitypes.NotFound("peer not found in the DHT: "+err.Error(), map[string]any{"id": id})
	}
	out := apitypes.PeerAddrs{ID: ai.ID.String(), Addrs: []string{}}
	for _, a := range ai.Addrs {
		out.Addrs = append(out.Addrs, a.String())
	}
	return out, nil
}

func gb(b int64) float64 { return math.Round(float64(b)/(1<<30)*1000) / 1000 }

func round1(f float64) float64 { return math.Round(f*10) / 10 }

func roundAll(fs []float64) []float64 {
	out := make([]float64, len(fs))
	for i, f := range fs {
		out[i] = round1(f)
	}
	return out
}
