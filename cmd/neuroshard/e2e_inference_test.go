package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

func greedyRequest(prompt string, n int) apitypes.InferenceRequest {
	temp := 0.0
	return apitypes.InferenceRequest{Prompt: &prompt, MaxTokens: &n, Temperature: &temp}
}

// Three processes each holding a third of the layers answer exactly as one process holding
// the whole model; with two holders of the middle span, killing the one in use mid-stream
// still completes the same answer.
func TestEndToEndInferenceAcrossProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := startNode(t, t.TempDir(), freeAPIPort(t), "--layers", "0-2", "--token", "tok")
	stA, err := client.New(a.api, "tok").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	boot := stA.Multiaddrs[0]
	mids := []*proc{
		startNode(t, t.TempDir(), freeAPIPort(t), "--layers", "3-5", "--token", "tok", "--bootstrap", boot),
		startNode(t, t.TempDir(), freeAPIPort(t), "--layers", "3-5", "--token", "tok", "--bootstrap", boot),
	}
	startNode(t, t.TempDir(), freeAPIPort(t), "--layers", "6-7", "--token", "tok", "--bootstrap", boot)
	whole := startNode(t, t.TempDir(), freeAPIPort(t), "--layers", "0-7", "--token", "tok")

	ca := client.New(a.api, "tok")
	deadline := time.Now().Add(30 * time.Second)
	for {
		cov, err := ca.Coverage(ctx)
		if err == nil && cov.Complete && len(cov.Layers[4].Providers) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("coverage never complete: %+v %v", cov, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Long enough that a kill at the stream's third event lands mid-generation (the node runs
	// ahead of the events the client has read).
	req := greedyRequest("JULIET:", 200)
	want, err := client.New(whole.api, "tok").Inference(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ca.Inference(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != want.Text || len(got.Route) != 3 {
		t.Fatalf("3 processes: %q via %+v; 1 process: %q", got.Text, got.Route, want.Text)
	}

	// Stream again and kill -9 the middle holder that serves it after 3 events.
	before := make([]int64, 2)
	for i, m := range mids {
		mm, _ := client.New(m.api, "tok").Metrics(ctx)
		before[i] = mm.Network.RPCCalls
	}
	var text strings.Builder
	killed := -1
	last, err := ca.InferenceStream(ctx, req, func(ev apitypes.TokenEvent) error {
		text.WriteString(ev.Token)
		if ev.Index == 2 {
			for i, m := range mids {
				if mm, err := client.New(m.api, "tok").Metrics(ctx); err == nil && mm.Network.RPCCalls > before[i] {
					killed = i
					m.cmd.Process.Signal(syscall.SIGKILL)
					<-m.done
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if killed < 0 {
		t.Fatal("neither middle holder served the stream")
	}
	if text.String() != want.Text || last.FinishReason != "length" {
		t.Fatalf("after killing a stage: %q, want %q", text.String(), want.Text)
	}
	if m, err := ca.Metrics(ctx); err != nil || m.Inference.Failovers < 1 {
		t.Fatalf("no failover counted: %+v %v", m.Inference, err)
	}
}
