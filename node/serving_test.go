package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// Inference runs on a pinned version: while inner steps change the training weights, the
// served weights (and the status's model_hash) stay theta_0 of the last round; when a round
// ends, they become its theta_0.
func TestServedWeightsArePinnedToTheLastRound(t *testing.T) {
	t.Parallel()
	n := startTrainingNetwork(t, 1000, "0-3")[0] // rounds far apart: the steps stay inner
	initial := n.ServedHash()
	if initial == "" || initial != n.model.InitParams(n.Span(), 0).Hash() {
		t.Fatalf("served %q, not the initial weights", initial)
	}
	eventually(t, 2*time.Minute, "inner steps", func() bool {
		n.train.mu.Lock()
		defer n.train.mu.Unlock()
		return n.train.innerSteps >= 3
	})
	if n.Stage().Hash() == initial {
		t.Fatal("training did not change the training weights")
	}
	if n.ServedHash() != initial || n.Serving().Params().Hash() != initial {
		t.Fatal("the served weights moved with the inner steps")
	}
	st, err := apiClient(n).Status(context.Background())
	if err != nil || st.ModelHash != initial {
		t.Fatalf("status model_hash %q, want the served %q (%v)", st.ModelHash, initial, err)
	}
	// A new theta_0 (what a round's end or a catch-up sets) becomes the served version.
	theta := n.Stage().Params()
	if err := (roundWeights{n: n, st: n.Stage()}).SetParams(theta); err != nil {
		t.Fatal(err)
	}
	if got := n.ServedHash(); got != theta.Hash() || got == initial {
		t.Fatalf("served %q after a new theta_0 %q", got, theta.Hash())
	}
}

// A checkpoint the node cannot write degrades /api/v1/health (once, not a log line a round)
// until a write succeeds.
func TestFailedCheckpointWriteDegradesHealth(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t))
	health := func() (bool, string) { // 503 when unhealthy: read the body either way
		resp, err := http.Get(n.APIURL() + "/api/v1/health")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h apitypes.Health
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			t.Fatal(err)
		}
		return h.Healthy, h.Checks["storage"]
	}
	if ok, s := health(); !ok || s != "ok" {
		t.Fatalf("healthy at start: %v %q", ok, s)
	}
	path := n.checkpointPath(n.Span())
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "in-the-way"), 0o700); err != nil { // a directory where the file goes
		t.Fatal(err)
	}
	round := diloco.Round{Round: 1, Steps: 10, Theta0: n.Stage().Params()}
	n.roundFinished(round)
	if ok, s := health(); ok || !strings.Contains(s, "checkpoint") {
		t.Fatalf("after a failed checkpoint write: healthy %v, storage %q", ok, s)
	}
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	n.roundFinished(round)
	if ok, s := health(); !ok || s != "ok" {
		t.Fatalf("after a good write: %v %q", ok, s)
	}
}

// A holder that stops answering leaves the coverage within 30 s though its provider records
// live on: the coverage, the models list and inference report its layers as missing.
func TestDeadHolderLeavesTheCoverage(t *testing.T) {
	t.Parallel()
	nodes := startNetwork(t, "0-3", "4-7")
	a, b := nodes[0], nodes[1]
	waitCoverage(t, a)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "layers 4-7 missing from the coverage", func() bool {
		v := a.api.Coverage(context.Background())
		return !v.Complete && slices.Equal(v.Missing, []int{4, 5, 6, 7})
	})
	_, err := apiClient(a).Inference(context.Background(), greedy("ROMEO:", 4))
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || !strings.Contains(ae.Message, "4") {
		t.Fatalf("inference with layers 4-7 gone: %v", err)
	}
}

// While the node serves a generation, training holds (up to TrainYield): the step in flight
// waits between the ops of its computations, the driver before its next step; training goes
// on once serving is over.
func TestTrainingYieldsToServing(t *testing.T) {
	on := true
	cfg := testConfig(t)
	cfg.Model, cfg.Train, cfg.TrainYield = "neuroshard-tiny", &on, time.Minute
	n := startNode(t, cfg)
	eventually(t, time.Minute, "training under way", func() bool { return n.innerSteps() > 2 })
	release, err := n.pipe.Acquire(16) // a generation of the node's own, as the API takes it
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // a step past its last computation may still land
	held := n.innerSteps()
	time.Sleep(700 * time.Millisecond)
	if got := n.innerSteps(); got != held {
		t.Fatalf("training took %d steps while the node served", got-held)
	}
	release()
	eventually(t, 30*time.Second, "training to go on", func() bool { return n.innerSteps() > held })
}
