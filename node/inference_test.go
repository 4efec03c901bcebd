package node

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

func greedy(prompt string, maxTokens int) apitypes.InferenceRequest {
	temp := 0.0
	return apitypes.InferenceRequest{Prompt: &prompt, MaxTokens: &maxTokens, Temperature: &temp}
}

func waitCoverage(t *testing.T, n *Node) {
	t.Helper()
	eventually(t, 15*time.Second, "complete coverage", func() bool { return n.api.Coverage(context.Background()).Complete })
}

func TestPipelineInferenceMatchesOneNode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nodes := startNetwork(t, "0-2", "3-5", "6-7")
	waitCoverage(t, nodes[0])
	whole := startNode(t, testConfig(t)) // a network of one, holding every layer

	req := greedy("ROMEO:", 24)
	got, err := apiClient(nodes[0]).Inference(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	want, err := apiClient(whole).Inference(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != want.Text || got.TokensGenerated != 24 || got.FinishReason != "length" {
		t.Fatalf("pipeline %q (%d, %s), one node %q", got.Text, got.TokensGenerated, got.FinishReason, want.Text)
	}
	if len(got.Route) != 3 || got.Route[1].Peer != nodes[1].ID() || got.Route[2].Layers != "6-7" {
		t.Fatalf("route: %+v", got.Route)
	}
	if got.Usage.PromptTokens != 7 || got.Usage.TotalTokens != 31 || got.Cost.Currency != "NEURO" || !strings.HasPrefix(got.ID, "inf_") {
		t.Fatalf("answer fields: %+v", got)
	}

	// Streaming: the events, in order, spell the same text; the last carries reason and usage.
	var pieces []string
	last, err := apiClient(nodes[0]).InferenceStream(ctx, req, func(ev apitypes.TokenEvent) error {
		if ev.Index != len(pieces) {
			t.Errorf("event index %d, want %d", ev.Index, len(pieces))
		}
		pieces = append(pieces, ev.Token)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(pieces, "") != want.Text || last.FinishReason != "length" || last.Usage == nil || last.Usage.CompletionTokens != 24 {
		t.Fatalf("stream %q, last %+v", strings.Join(pieces, ""), last)
	}
	m, err := apiClient(nodes[0]).Metrics(ctx)
	if err != nil || m.Inference.RequestsTotal != 2 || m.Inference.TokensGenerated != 48 {
		t.Fatalf("metrics: %+v %v", m, err)
	}
	// libp2p's byte counters are swept once a second: the bytes show up within one sweep.
	eventually(t, 3*time.Second, "bytes sent in the metrics", func() bool {
		m, err := apiClient(nodes[0]).Metrics(ctx)
		return err == nil && m.Network.BytesSent > 0
	})
	if served, _ := apiClient(nodes[1]).Metrics(ctx); served.Network.RPCCalls < 48 {
		t.Fatalf("middle stage served %d forward steps", served.Network.RPCCalls)
	}
}

func TestFailoverMidStreamGivesTheSameAnswer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nodes := startNetwork(t, "0-2", "3-5", "3-5", "6-7")
	waitCoverage(t, nodes[0])
	eventually(t, 10*time.Second, "both middle holders in the coverage", func() bool {
		return len(nodes[0].api.Coverage(ctx).Layers[4].Providers) == 2
	})
	// Long enough that the kill lands mid-generation: the server runs ahead of the events the
	// client has read (30 tokens were done before the client read its 8th once decoding got
	// faster), so the kill comes at the client's third event with most tokens still to go.
	req := greedy("To be, or not", 200)
	want, err := apiClient(nodes[0]).Inference(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var killed *Node
	var text strings.Builder
	last, err := apiClient(nodes[0]).InferenceStream(ctx, req, func(ev apitypes.TokenEvent) error {
		text.WriteString(ev.Token)
		if ev.Index == 2 && killed == nil {
			// One holder only: the generation goes on while this runs, and may already have
			// failed over to the other one.
			for _, n := range nodes[1:3] {
				if n.pipe.Served() > 0 {
					killed = n
					n.Close()
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if killed == nil {
		t.Fatal("no middle holder was serving the stream")
	}
	if text.String() != want.Text || last.Usage.CompletionTokens != 200 {
		t.Fatalf("after failover %q, uninterrupted %q", text.String(), want.Text)
	}
	m, _ := apiClient(nodes[0]).Metrics(ctx)
	if m.Inference.Failovers < 1 {
		t.Fatalf("failovers: %+v", m.Inference)
	}
}

func TestInferenceErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	lone := testConfig(t)
	lone.Layers = "0-2"
	n := startNode(t, lone)
	c := apiClient(n)
	_, err := c.Inference(ctx, greedy("hello", 5))
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != apitypes.CodeNodeUnavailable {
		t.Fatalf("missing layers: %v", err)
	}
	if miss, _ := ae.Details["missing_layers"].([]any); len(miss) != 5 {
		t.Fatalf("missing layers named: %v", ae.Details)
	}
	for _, body := range []string{
		`{"prompt": ""}`,
		`{"max_tokens": 5}`,
		`{"prompt": "hi", "max_tokens": 0}`,
		`{"prompt": "hi", "max_tokens": 100000}`,
		`{"prompt": "hi", "temperature": 2.5}`,
		`{"prompt": "hi", "temperature": -0.1}`,
		`{"prompt": "hi", "top_p": 0}`,
		`{"prompt": "hi", "top_k": -3}`,
		`{"prompt": "hi", "stop": [""]}`,
		`{"prompt": 42}`,
		`{"prompt": "hi", "max_tokens": "ten"}`,
		`{"prompt": "hi", "stream": "yes"}`,
		`{"prompt": "hi", "colour": "blue"}`,
		`{"prompt": "` + strings.Repeat("x", 300) + `"}`,
		`not json`,
	} {
		err := c.Do(ctx, http.MethodPost, "/api/v1/inference", strings.NewReader(body), nil)
		if !client.IsCode(err, apitypes.CodeInvalidRequest) {
			t.Errorf("%.40s: want INVALID_REQUEST, got %v", body, err)
		}
	}
}

// A client that disconnects mid-stream frees the sessions of every stage.
func TestDisconnectFreesStageSessions(t *testing.T) {
	t.Parallel()
	nodes := startNetwork(t, "0-3", "4-7")
	waitCoverage(t, nodes[0])
	ctx, cancel := context.WithCancel(context.Background())
	_, err := apiClient(nodes[0]).InferenceStream(ctx, greedy("Once", 200), func(ev apitypes.TokenEvent) error {
		if ev.Index == 3 {
			if nodes[1].pipe.Served() != 1 {
				t.Errorf("remote stage holds %d sessions mid-stream", nodes[1].pipe.Served())
			}
			cancel()
		}
		return nil
	})
	if err == nil {
		t.Fatal("the stream went on after the client left")
	}
	eventually(t, 10*time.Second, "the remote stage to free the session", func() bool { return nodes[1].pipe.Served() == 0 })
	if nodes[0].pipe.Running() != 0 {
		t.Fatal("the generation slot was not released")
	}
}

// Concurrent requests spread over the holders of a span.
func TestRoutesSpreadOverHolders(t *testing.T) {
	t.Parallel()
	nodes := startNetwork(t, "0-3", "4-7", "4-7")
	waitCoverage(t, nodes[0])
	eventually(t, 10*time.Second, "both tail holders in the coverage of every tail layer", func() bool {
		cov := nodes[0].api.Coverage(context.Background())
		for l := 4; l <= 7; l++ {
			if len(cov.Layers[l].Providers) != 2 {
				return false
			}
		}
		return true
	})
	ctx := context.Background()
	r1, err := nodes[0].pipe.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := nodes[0].pipe.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if len(r1.Hops()) != 2 || len(r2.Hops()) != 2 {
		t.Fatalf("routes of %d and %d hops, want 2 each", len(r1.Hops()), len(r2.Hops()))
	}
	if r1.Hops()[1].Peer == r2.Hops()[1].Peer {
		t.Fatalf("both routes use the same tail holder: %v / %v", r1.Hops()[1].Peer, r2.Hops()[1].Peer)
	}
}

// A stage that asks a requester to come back (BUSY: its compute budget for the peer is spent,
// with the time to wait) and that nobody else holds is waited for, not failed: the
// generation completes with the same text, where it had ended in a 503.
func TestBusyStageIsWaitedForWhenNobodyElseHoldsIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	driver := startNode(t, func() Config { c := testConfig(t); c.Layers = "0-3"; return c }())
	cfg := testConfig(t)
	cfg.Layers, cfg.Bootstrap = "4-7", driver.Multiaddrs()
	// 200 ms of compute a second after a burst of 5 ms: the prefill (with its graph's
	// compilation) spends it, and the stage asks to come back within the route's 10 s of
	// waits even where a step takes 10x longer (the race detector on a busy machine: a
	// budget of 40 ms a second asked for 11.4 s once there).
	cfg.ComputeShare, cfg.ComputeBurst = 0.1, 5*time.Millisecond
	stage := startNode(t, cfg)
	waitCoverage(t, driver)
	whole := startNode(t, testConfig(t))
	req := greedy("ROMEO:", 48)
	start := time.Now()
	got, err := apiClient(driver).Inference(ctx, req)
	if err != nil {
		t.Fatalf("a generation through a stage that ran out of budget: %v", err)
	}
	want, err := apiClient(whole).Inference(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != want.Text || got.TokensGenerated != 48 || len(got.Route) != 2 || got.Route[1].Peer != stage.ID() {
		t.Fatalf("through the busy stage %q (%d tokens, route %+v), one node %q", got.Text, got.TokensGenerated, got.Route, want.Text)
	}
	if driver.pipe.BusyWaits() == 0 {
		t.Fatal("the stage's budget never ran out: the test did not wait out a BUSY stage")
	}
	t.Logf("48 tokens through a stage allowing 200 ms of compute a second: %v, %d waits", time.Since(start), driver.pipe.BusyWaits())
}
