package node

import (
	"context"
	"fmt"
	"net"
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
func (n *Node) Status(ctx context.Context) apitypes.Status {
	span := n.Span()
	n.mu.Lock()
	started := n.started
	n.mu.Unlock()
	uptime := int64(0)
	if !started.IsZero() {
		uptime = int64(time.Since(started).Seconds())
	}
	return apitypes.Status{
		NodeID:        n.ID(),
		Version:       Version,
		UptimeSeconds: uptime,
		Status:        n.state.Load().(string),
		Role:          roleOf(span.Indices(), n.model.Layers),
		Layers:        span.Indices(),
		PeerCount:     len(n.host.Peers()),
		Training:      n.trainingStatus(),
		Resources:     apitypes.Resources{CPUPercent: n.cpu.percent(), RAMUsed: residentBytes()},
		Multiaddrs:    n.Multiaddrs(),
		Model:         n.model.Name,
		ModelHash:     n.modelHash(),
		APIPort:       n.apiPort(),
		P2PPort:       n.p2pPort(),
	}
}

// modelHash is the hash of the held span's weights ("" before Start).
func (n *Node) modelHash() string {
	if st := n.Stage(); st != nil {
		return st.Hash()
	}
	return ""
}

func (n *Node) apiPort() int {
	if n.front == nil {
		return n.cfg.Port
	}
	if a, ok := n.front.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return n.cfg.Port
}

func (n *Node) p2pPort() int {
	for _, a := range n.host.Libp2p().Addrs() {
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
func (n *Node) Health(ctx context.Context) apitypes.Health {
	checks := map[string]string{"gpu": "not used (CPU backend)", "network": "ok", "storage": "ok", "peers": "ok"}
	healthy := true
	if len(n.host.Libp2p().Addrs()) == 0 {
		checks["network"], healthy = "not listening", false
	}
	if err := checkWritable(n.cfg.DataDir); err != nil {
		checks["storage"], healthy = err.Error(), false
	}
	if len(n.host.Peers()) == 0 {
		checks["peers"] = "no peers connected"
	}
	if s := n.state.Load().(string); s != "running" {
		checks["node"], healthy = s, false
	}
	return apitypes.Health{Healthy: healthy, Checks: checks}
}

// Peers implements httpapi.Backend: connected peers, with the layers the DHT says they hold.
func (n *Node) Peers(ctx context.Context) apitypes.PeerList {
	held := n.cov.Get(ctx).ByPeer()
	list := apitypes.PeerList{Peers: []apitypes.Peer{}}
	for _, p := range n.host.Peers() {
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
			e.Role = roleOf(ls, n.model.Layers)
		}
		list.Peers = append(list.Peers, e)
	}
	list.Total = len(list.Peers)
	return list
}

// Layers implements httpapi.Backend.
func (n *Node) Layers(ctx context.Context) apitypes.LayerList {
	span := n.Span()
	out := apitypes.LayerList{Layers: []apitypes.Layer{}, TotalLayers: n.model.Layers, MyLayerCount: span.Len()}
	if n.state.Load().(string) != "running" {
		out.MyLayerCount = 0
		return out
	}
	for _, i := range span.Indices() {
		typ := "transformer"
		switch {
		case i == 0 && i == n.model.Layers-1:
			typ = "embedding+transformer+lm_head"
		case i == 0:
			typ = "embedding+transformer"
		case i == n.model.Layers-1:
			typ = "transformer+lm_head"
		}
		mem := n.model.SpanMemoryBytes(layers.Span{First: i, Last: i}) // the embedding or head included
		out.Layers = append(out.Layers, apitypes.Layer{Index: i, Type: typ, MemoryMB: (mem + (1 << 20) - 1) >> 20, Status: "active"})
	}
	return out
}

// Network implements httpapi.Backend: node counts come from the DHT's coverage view.
func (n *Node) Network(ctx context.Context) apitypes.Network {
	view := n.cov.Get(ctx)
	var counts apitypes.NodeCounts
	for _, ls := range view.ByPeer() {
		counts.Total++
		switch roleOf(ls, n.model.Layers) {
		case RoleDriver:
			counts.Drivers++
		case RoleValidator:
			counts.Validators++
		default:
			counts.Workers++
		}
	}
	m := n.model
	var tr *apitypes.NetworkTraining
	if g := n.TrainingGlobal(ctx); g.TotalNodesTraining > 0 {
		tr = &apitypes.NetworkTraining{Epoch: n.newestRound(), GlobalStep: g.GlobalSteps, Loss: g.GlobalAvgLoss}
	}
	return apitypes.Network{
		Training: tr,
		Nodes:    counts,
		Architecture: apitypes.Architecture{Model: m.Name, Layers: m.Layers, HiddenDim: m.DModel, Heads: m.Heads,
			Vocab: m.Vocab, Context: m.Context, Parameters: layers.HumanParams(m.TotalParams())},
		Coverage: apiCoverage(view),
		Ledger:   n.ledgerView(),
	}
}

func (n *Node) ledgerView() apitypes.NetworkLedger {
	minted, burned, seq := n.ledger.Supply()
	eq, _ := n.ledger.Equivocations(1000)
	p := n.ledger.Params()
	return apitypes.NetworkLedger{NetworkID: p.ID(), Transactions: seq, Minted: minted, Burned: burned,
		Circulating: minted - burned, Equivocations: len(eq), PricePerToken: p.PricePerToken}
}

// Config implements httpapi.Backend.
func (n *Node) Config(ctx context.Context) apitypes.NodeConfig {
	s := n.settings.Get()
	boot := n.cfg.Bootstrap
	if boot == nil {
		boot = []string{}
	}
	return apitypes.NodeConfig{
		NodeID:    n.ID(),
		Port:      n.apiPort(),
		GRPCPort:  n.p2pPort(),
		Bootstrap: boot,
		Training: apitypes.TrainingConfig{Enabled: s.Training.Enabled, BatchSize: s.Training.BatchSize,
			LearningRate: s.Training.LearningRate, DiLoCoSteps: s.Training.DiLoCoSteps, Compression: s.Training.Compression,
			OuterLR: s.Training.OuterLR, OuterMomentum: s.Training.OuterMomentum},
		Resources: apitypes.ResourcesConfig{MaxMemoryGB: s.Resources.MaxMemoryGB, CPUThreads: s.Resources.CPUThreads},
	}
}

// PatchConfig implements httpapi.Backend.
func (n *Node) PatchConfig(ctx context.Context, p apitypes.ConfigPatch) (apitypes.ConfigPatchResult, error) {
	return n.settings.Apply(p)
}

// RoutingTable implements httpapi.Backend.
func (n *Node) RoutingTable(ctx context.Context) apitypes.RoutingTable {
	connected := map[peer.ID]bool{}
	for _, p := range n.host.Peers() {
		connected[p.ID] = true
	}
	rt := apitypes.RoutingTable{Peers: []apitypes.DHTPeer{}}
	for _, id := range n.host.RoutingTable() {
		rt.Peers = append(rt.Peers, apitypes.DHTPeer{ID: id.String(), Connected: connected[id], LatencyMS: ms(n.host.Latency(id))})
	}
	rt.Size = len(rt.Peers)
	return rt
}

// Providers implements httpapi.Backend.
func (n *Node) Providers(ctx context.Context, layer int) (apitypes.Providers, error) {
	if layer < 0 || layer >= n.model.Layers {
		return apitypes.Providers{}, apitypes.NotFound(fmt.Sprintf("layer %d does not exist: %s has layers 0-%d", layer, n.model.Name, n.model.Layers-1),
			map[string]any{"layer": layer, "total_layers": n.model.Layers})
	}
	key := coverage.LayerKey(n.model.Name, layer)
	provs, err := n.cov.Providers(ctx, layer)
	if err != nil {
		return apitypes.Providers{}, apitypes.NewError(http.StatusServiceUnavailable, apitypes.CodeNodeUnavailable, "provider lookup failed: "+err.Error(), nil)
	}
	out := apitypes.Providers{Layer: layer, Key: p2p.ContentKey(key).String(), Providers: []apitypes.Provider{}}
	for _, p := range provs {
		addrs := make([]string, 0, len(p.Addrs))
		for _, a := range p.Addrs {
			addrs = append(addrs, a.String())
		}
		out.Providers = append(out.Providers, apitypes.Provider{ID: p.ID.String(), Addrs: addrs, Self: p.ID == n.host.ID()})
	}
	return out, nil
}

// FindPeer implements httpapi.Backend.
func (n *Node) FindPeer(ctx context.Context, id string) (apitypes.PeerAddrs, error) {
	pid, err := peer.Decode(id)
	if err != nil {
		return apitypes.PeerAddrs{}, apitypes.InvalidRequest("not a peer ID: "+err.Error(), map[string]any{"id": id})
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ai, err := n.host.FindPeer(ctx, pid)
	if err != nil {
		return apitypes.PeerAddrs{}, apitypes.NotFound("peer not found in the DHT: "+err.Error(), map[string]any{"id": id})
	}
	out := apitypes.PeerAddrs{ID: ai.ID.String(), Addrs: []string{}}
	for _, a := range ai.Addrs {
		out.Addrs = append(out.Addrs, a.String())
	}
	return out, nil
}

// trainingStatus is the training section of /status: the node's rounds (epochs), inner steps
// and recent loss; absent before the node has trained.
func (n *Node) trainingStatus() *apitypes.TrainingStatus {
	n.train.mu.Lock()
	steps := n.train.innerSteps
	n.train.mu.Unlock()
	n.sync.mu.Lock()
	rounds, sent := n.sync.round, n.sync.sentBytes
	n.sync.mu.Unlock()
	if steps == 0 && rounds == 0 {
		return nil
	}
	tr := n.settings.Get().Training
	return &apitypes.TrainingStatus{Enabled: tr.Enabled, Epoch: rounds, Step: steps, Loss: float64(n.recentLoss()),
		Compression: tr.Compression, ExchangeBytesSent: sent}
}

// newestRound is the highest round any fresh report (this node's included) names.
func (n *Node) newestRound() int64 {
	n.reports.mu.Lock()
	defer n.reports.mu.Unlock()
	newest := int64(0)
	for _, ra := range n.reports.by {
		if time.Since(ra.at) < reportTTL {
			newest = max(newest, ra.r.Round)
		}
	}
	return newest
}
