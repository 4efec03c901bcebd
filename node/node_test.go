package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/internal/datadir"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/nodeapi"
)

// testConfig is a node on 127.0.0.1 with free ports, its own data dir and short intervals.
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Port = 0
	cfg.Host = "127.0.0.1"
	cfg.BootstrapInterval = 200 * time.Millisecond
	cfg.PingInterval = time.Second
	cfg.CoverageInterval = 100 * time.Millisecond
	off := false
	cfg.Train = &off // tests that train turn it on; others compare weights across nodes
	// Audits open sessions on other holders in the background: tests of audits turn them on,
	// the others count sessions and kill holders.
	cfg.AuditRate = -1
	cfg.Rebalance = 0 // the tests of moves turn it on
	return cfg
}

// startNode starts a real node with its REST API (opts configure the API) and closes it at
// cleanup.
func startNode(t testing.TB, cfg Config, opts ...httpapi.Option) *Node {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	attachAPI(t, n, opts...)
	if err := n.Start(context.Background()); err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// startNetwork starts one node per span; every node after the first bootstraps off the first.
func startNetwork(t testing.TB, spans ...string) []*Node {
	t.Helper()
	var nodes []*Node
	for i, s := range spans {
		cfg := testConfig(t)
		cfg.Layers = s
		if i > 0 {
			cfg.Bootstrap = nodes[0].Multiaddrs()
		}
		nodes = append(nodes, startNode(t, cfg))
	}
	return nodes
}

func apiClient(n *Node) *client.Client { return client.New(n.APIURL(), n.Token()) }

func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	eventuallyShowing(t, timeout, what, func() (bool, any) { return cond(), nil })
}

// eventuallyShowing is eventually whose timeout also shows what the condition saw last.
func eventuallyShowing(t testing.TB, timeout time.Duration, what string, cond func() (bool, any)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if seen != nil {
				t.Fatalf("timed out after %v waiting for %s; last seen: %+v", timeout, what, seen)
			}
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestThreeNodesSeeEachOtherThroughTheAPI(t *testing.T) {
	t.Parallel()
	nodes := startNetwork(t, "0-2", "3-5", "6-7")
	ctx := context.Background()
	c := apiClient(nodes[2])

	eventually(t, 10*time.Second, "coverage to be complete from the third node", func() bool {
		cov, err := c.Coverage(ctx)
		return err == nil && cov.Complete
	})
	peers, err := c.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]apitypes.Peer{}
	for _, p := range peers.Peers {
		byID[p.ID] = p
	}
	for i, want := range [][]int{{0, 1, 2}, {3, 4, 5}} {
		p, ok := byID[nodes[i].ID()]
		if !ok {
			t.Fatalf("/peers on node 3 lacks node %d: %+v", i+1, peers)
		}
		if !slices.Equal(p.Layers, want) {
			t.Fatalf("node %d layers %v, want %v", i+1, p.Layers, want)
		}
		if !strings.HasPrefix(p.Address, "/ip4/127.0.0.1/") {
			t.Fatalf("peer address %q is not loopback", p.Address)
		}
	}
	if byID[nodes[0].ID()].Role != nodeapi.RoleDriver || byID[nodes[1].ID()].Role != nodeapi.RoleWorker {
		t.Fatalf("roles: %+v", peers)
	}

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.NodeID != nodes[2].ID() || st.Role != nodeapi.RoleValidator || !slices.Equal(st.Layers, []int{6, 7}) || st.Status != "running" {
		t.Fatalf("status: %+v", st)
	}
	if st.PeerCount != 2 || len(st.Multiaddrs) == 0 || !strings.HasSuffix(st.Multiaddrs[0], "/p2p/"+st.NodeID) {
		t.Fatalf("status peers/multiaddrs: %+v", st)
	}

	net, err := c.Network(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if net.Nodes.Total != 3 || net.Nodes.Drivers != 1 || net.Nodes.Workers != 1 || net.Nodes.Validators != 1 {
		t.Fatalf("network counts: %+v", net.Nodes)
	}
	if net.Architecture.Layers != 8 || net.Architecture.HiddenDim != 128 {
		t.Fatalf("architecture: %+v", net.Architecture)
	}

	provs, err := c.Providers(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(provs.Providers) != 1 || provs.Providers[0].ID != nodes[1].ID() || !strings.HasPrefix(provs.Key, "bafk") {
		t.Fatalf("providers of layer 4: %+v", provs)
	}
	if _, err := c.Providers(ctx, 8); !client.IsCode(err, apitypes.CodeNotFound) {
		t.Fatalf("providers of a layer outside the model: %v", err)
	}

	rt, err := c.RoutingTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rt.Size != 2 {
		t.Fatalf("routing table: %+v", rt)
	}
	found, err := c.FindPeer(ctx, nodes[0].ID())
	if err != nil || found.ID != nodes[0].ID() || len(found.Addrs) == 0 {
		t.Fatalf("find peer: %+v %v", found, err)
	}
	if _, err := c.FindPeer(ctx, "not-a-peer"); !client.IsCode(err, apitypes.CodeInvalidRequest) {
		t.Fatalf("find malformed peer: %v", err)
	}

	ll, err := c.Layers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ll.TotalLayers != 8 || ll.MyLayerCount != 2 || ll.Layers[1].Type != "transformer+lm_head" {
		t.Fatalf("layers: %+v", ll)
	}
}

func TestJoiningNodeTakesTheLeastReplicatedSpan(t *testing.T) {
	t.Parallel()
	first := testConfig(t)
	budget := budgetFor(first.Model, 3)
	first.MaxMemory = budget
	a := startNode(t, first)
	if a.Span().String() != "0-2" {
		t.Fatalf("first node took %s, want 0-2", a.Span())
	}
	second := testConfig(t)
	second.MaxMemory = budget
	second.Bootstrap = a.Multiaddrs()
	b := startNode(t, second)
	if b.Span().String() != "3-5" {
		t.Fatalf("second node took %s, want 3-5", b.Span())
	}
	// The second node announces its layers in the background: the third must be able to see
	// them when it chooses.
	eventually(t, 10*time.Second, "the second node's layers in the DHT", func() bool {
		return slices.Contains(a.pipe.Holdings(context.Background())[b.host.ID()], b.Span())
	})
	third := testConfig(t)
	third.MaxMemory = budget
	third.Bootstrap = a.Multiaddrs()
	c := startNode(t, third)
	if c.Span().String() != "5-7" {
		t.Fatalf("third node took %s, want 5-7", c.Span())
	}
}

func TestAuthErrorsAndConfigPatch(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t))
	ctx := context.Background()
	anon := client.New(n.APIURL(), "")
	if _, err := anon.Status(ctx); !client.IsCode(err, apitypes.CodeUnauthorized) {
		t.Fatalf("no token: %v", err)
	}
	if _, err := client.New(n.APIURL(), "wrong").Peers(ctx); !client.IsCode(err, apitypes.CodeUnauthorized) {
		t.Fatalf("wrong token: %v", err)
	}
	if h, err := anon.Health(ctx); err != nil || !h.Healthy {
		t.Fatalf("health must be public and healthy: %+v %v", h, err)
	}
	c := apiClient(n)
	before, err := c.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		`{"training": {"batch_size": "16"}}`,
		`{"training": {"batch_size": 0}}`,
		`{"training": {"batch_size": 16, "learning_rate": -1}}`,
		`{"training": {"outer_lr": 0}}`,
		`{"training": {"outer_lr": 1, "outer_momentum": 1}}`,
		`{"training": {"outer_momentum": -0.1}}`,
		`{"training": {"batch_sise": 16}}`,
		`{"training": {"batch_size": 16}`,
		`{"training": {"batch_size": 16}} {}`,
		`[]`,
		`{}`,
		``,
	} {
		var out map[string]any
		err := c.Do(ctx, http.MethodPatch, "/api/v1/config", strings.NewReader(body), &out)
		if !client.IsCode(err, apitypes.CodeInvalidRequest) {
			t.Fatalf("PATCH %q: want INVALID_REQUEST, got %v", body, err)
		}
	}
	after, _ := c.Config(ctx)
	if after.Training != before.Training || after.Resources != before.Resources {
		t.Fatalf("a rejected patch changed the config: %+v -> %+v", before, after)
	}
	bs, threads := 16, 1
	res, err := c.PatchConfig(ctx, apitypes.ConfigPatch{Training: &apitypes.TrainingPatch{BatchSize: &bs}})
	if err != nil || !res.Success || res.RestartRequired || !slices.Equal(res.Updated, []string{"training.batch_size"}) {
		t.Fatalf("patch batch size: %+v %v", res, err)
	}
	res, err = c.PatchConfig(ctx, apitypes.ConfigPatch{Resources: &apitypes.ResourcesPatch{CPUThreads: &threads}})
	if err != nil || !res.RestartRequired {
		t.Fatalf("patch cpu threads: %+v %v", res, err)
	}
	if got, _ := c.Config(ctx); got.Training.BatchSize != 16 {
		t.Fatalf("batch size after patch: %+v", got.Training)
	}
	if err := c.Do(ctx, http.MethodGet, "/api/v1/nope", nil, nil); !client.IsCode(err, apitypes.CodeNotFound) {
		t.Fatalf("unknown endpoint: %v", err)
	}
}

func TestRestartKeepsIdentityTokenAndSettings(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	n1, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !n1.TokenGenerated() || !strings.HasPrefix(n1.Token(), "nst_") {
		t.Fatalf("first start must generate a token, got %q", n1.Token())
	}
	attachAPI(t, n1)
	if err := n1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	bs := 32
	if _, err := apiClient(n1).PatchConfig(context.Background(), apitypes.ConfigPatch{Training: &apitypes.TrainingPatch{BatchSize: &bs}}); err != nil {
		t.Fatal(err)
	}
	id, token := n1.ID(), n1.Token()
	st1, err := apiClient(n1).Status(context.Background())
	if err != nil || len(st1.ModelHash) != 64 {
		t.Fatalf("model hash in status: %+v %v", st1, err)
	}
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(cfg.DataDir, datadir.TokenFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode: %v %v", info, err)
	}
	n2 := startNode(t, cfg)
	if n2.ID() != id || n2.Token() != token || n2.TokenGenerated() {
		t.Fatalf("restart changed identity or token: %s/%s -> %s/%s", id, token, n2.ID(), n2.Token())
	}
	got, err := apiClient(n2).Config(context.Background())
	if err != nil || got.Training.BatchSize != 32 {
		t.Fatalf("settings after restart: %+v %v", got, err)
	}
	st2, _ := apiClient(n2).Status(context.Background())
	if st2.ModelHash != st1.ModelHash {
		t.Fatalf("weights changed across restart: %s -> %s", st1.ModelHash, st2.ModelHash)
	}
	ll, _ := apiClient(n2).Layers(context.Background())
	if len(ll.Layers) != 8 || ll.Layers[0].Status != "active" {
		t.Fatalf("layers after restart: %+v", ll)
	}
	// A ledger made under other network rules stops the node with what to do about it.
	n2.Close()
	other, rules := cfg, ledger.DefaultParams()
	rules.RoundQuorum = 3
	other.Network = &rules
	if n, err := New(other); !errors.Is(err, ledger.ErrNetwork) || !strings.Contains(err.Error(), "move "+filepath.Join(cfg.DataDir, ledgerDir)+" aside") {
		if n != nil {
			n.Close()
		}
		t.Fatalf("start with other network rules: %v", err)
	}
	// A checkpoint that fails its hash stops the node with a clear error.
	path := n2.checkpointPath(n2.Span())
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-10] ^= 0x40
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	n3, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n3.Close()
	if err := n3.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "checkpoint") {
		t.Fatalf("start with a corrupt checkpoint: %v", err)
	}
}

func TestInvalidConfigs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"layers outside model", func(c *Config) { c.Layers = "6-8" }},
		{"layers reversed", func(c *Config) { c.Layers = "5-3" }},
		{"unknown model", func(c *Config) { c.Model = "gpt-99" }},
		{"port too high", func(c *Config) { c.Port = 65000 }},
		{"bad host", func(c *Config) { c.Host = "localhost:9" }},
		{"bootstrap without peer id", func(c *Config) { c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/9000"} }},
		{"bad dht mode", func(c *Config) { c.DHTMode = "maybe" }},
		{"empty data dir", func(c *Config) { c.DataDir = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.mod(&cfg)
			if _, err := New(cfg); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestStatusRateLimitAnswers429WithRetryAfter(t *testing.T) {
	n := startNode(t, testConfig(t))
	c := apiClient(n)
	ctx := context.Background()
	// The bucket refills while the burst runs (100/min: one token per 0.6 s), so the refusal
	// comes after the budget plus what refilled meanwhile, never before the budget.
	budget := httpapi.DefaultLimits[httpapi.ClassStatus]
	start := time.Now()
	var err error
	passed := 0
	for ; passed < 2*budget; passed++ {
		if _, err = c.Status(ctx); err != nil {
			break
		}
	}
	refilled := int(time.Since(start).Seconds()*float64(budget)/60) + 1
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests || ae.Code != apitypes.CodeRateLimited {
		t.Fatalf("request past the budget: %v", err)
	}
	if passed < budget || passed > budget+refilled {
		t.Fatalf("%d requests passed, want %d-%d (the budget and what refilled)", passed, budget, budget+refilled)
	}
	if ra, ok := ae.Details["retry_after"].(float64); !ok || ra < 1 {
		t.Fatalf("retry_after: %v", ae.Details)
	}
	// Health is not rate limited.
	if _, err := c.Health(ctx); err != nil {
		t.Fatalf("health after the status budget is spent: %v", err)
	}
}

// Eight nodes bootstrap off one, each holding one layer of the 8-layer model: every routing
// table holds the seven others, and a node that joins afterwards finds a provider of every layer.
func TestEightNodesAndAFreshNodeSeesEveryLayer(t *testing.T) {
	t.Parallel()
	spans := make([]string, 8)
	for i := range spans {
		spans[i] = fmt.Sprintf("%d-%d", i, i)
	}
	nodes := startNetwork(t, spans...)
	eventually(t, 15*time.Second, "every routing table to hold the seven others", func() bool {
		for _, n := range nodes {
			if len(n.Host().RoutingTable()) != 7 {
				return false
			}
		}
		return true
	})
	cfg := testConfig(t)
	cfg.Bootstrap = nodes[5].Multiaddrs()
	cfg.Layers = "0-7"
	fresh := startNode(t, cfg)
	eventually(t, 10*time.Second, "the fresh node to see every layer held by its node", func() bool {
		cov := fresh.api.Coverage(context.Background())
		for i, lc := range cov.Layers {
			if !slices.Contains(lc.Providers, nodes[i].ID()) {
				return false
			}
		}
		return cov.Complete
	})
}
