package client_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/node"
)

// The client against a real node serving its REST API on 127.0.0.1.
func startNode(t *testing.T) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.DataDir, cfg.Port, cfg.Host, cfg.Model = t.TempDir(), 0, "127.0.0.1", "neuroshard-tiny"
	cfg.BootstrapInterval, cfg.CoverageInterval = 200*time.Millisecond, 100*time.Millisecond
	off := false
	cfg.Train = &off
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(n.API(), n.Token())
	if err != nil {
		t.Fatal(err)
	}
	n.Attach(api)
	if err := n.Start(context.Background()); err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestClientAgainstARealNode(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	c := client.New(n.APIURL()+"/", n.Token()) // a trailing slash is fine

	h, err := c.Health(ctx)
	if err != nil || !h.Healthy {
		t.Fatalf("health: %+v %v", h, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.NodeID != n.ID() || st.Model != "neuroshard-tiny" || st.APIPort == 0 {
		t.Fatalf("status: %+v %v", st, err)
	}
	ls, err := c.Layers(ctx)
	if err != nil || ls.MyLayerCount != 4 || len(ls.Layers) != 4 {
		t.Fatalf("layers: %+v %v", ls, err)
	}

	// Error answers come back as *APIError with the status, code and details.
	zero := 0
	_, err = c.PatchConfig(ctx, apitypes.ConfigPatch{Training: &apitypes.TrainingPatch{BatchSize: &zero}})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != apitypes.CodeInvalidRequest ||
		ae.Details["field"] != "training.batch_size" || !client.IsCode(err, apitypes.CodeInvalidRequest) {
		t.Fatalf("bad patch: %v", err)
	}
	if _, err := client.New(n.APIURL(), "nst_wrong").Status(ctx); !client.IsCode(err, apitypes.CodeUnauthorized) {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := client.New("http://127.0.0.1:1", n.Token()).Status(ctx); err == nil || errors.As(err, &ae) {
		t.Fatalf("no node listening: %v (want a transport error, not an API error)", err)
	}

	// Generation, whole and streamed, give the same text.
	prompt, max, temp := "ROMEO:", 8, 0.0
	req := apitypes.InferenceRequest{Prompt: &prompt, MaxTokens: &max, Temperature: &temp}
	whole, err := c.Inference(ctx, req)
	if err != nil || whole.TokensGenerated != 8 {
		t.Fatalf("inference: %+v %v", whole, err)
	}
	var pieces []string
	last, err := c.InferenceStream(ctx, req, func(ev apitypes.TokenEvent) error { pieces = append(pieces, ev.Token); return nil })
	if err != nil || strings.Join(pieces, "") != whole.Text || last == nil || last.FinishReason != "length" {
		t.Fatalf("stream %q vs %q, last %+v, %v", strings.Join(pieces, ""), whole.Text, last, err)
	}

	b, err := c.Balance(ctx)
	if err != nil || b.Address != n.WalletAddress().String() {
		t.Fatalf("balance: %+v %v", b, err)
	}
}
