package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// TestEndToEndTasks runs the task API against the built binary: 100 tasks of mixed priority
// submitted at once all complete, critical ones first on average; cancel works for a queued
// and a running task; a task running when the node is killed completes after the restart.
func TestEndToEndTasks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := []string{"--model", "neuroshard-tiny", "--layers", "0-3", "--rate-limit", "inference=0", "--log-level", "info"}
	p := startNode(t, dir, freeAPIPort(t), args...)
	api := client.New(p.api, readToken(t, dir))
	ctx := context.Background()
	prompt := "ROMEO:"

	const n = 100
	prios := []string{"standard", "high", "critical"}
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mt := 24
			r, err := api.SubmitTask(ctx, apitypes.TaskRequest{Prompt: &prompt, Priority: prios[i%3], MaxTokens: &mt})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = r.TaskID
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	done := map[string]apitypes.TaskView{}
	deadline := time.Now().Add(5 * time.Minute)
	for len(done) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d tasks completed in 5 minutes", len(done), n)
		}
		list, err := api.Tasks(ctx, "completed", "", 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range list.Tasks {
			done[v.ID] = v
		}
		time.Sleep(200 * time.Millisecond)
	}
	var sum [3]time.Duration
	var count [3]int
	var first time.Time
	for _, v := range done {
		c, _ := time.Parse(time.RFC3339Nano, v.CompletedAt)
		if first.IsZero() || c.Before(first) {
			first = c
		}
	}
	for i, id := range ids {
		v := done[id]
		if v.Result == "" || v.TokensUsed == 0 {
			t.Fatalf("task %s completed without a result: %+v", id, v)
		}
		c, _ := time.Parse(time.RFC3339Nano, v.CompletedAt)
		sum[i%3] += c.Sub(first)
		count[i%3]++
	}
	mean := func(k int) time.Duration { return sum[k] / time.Duration(count[k]) }
	t.Logf("mean completion after the first: standard %v, high %v, critical %v", mean(0), mean(1), mean(2))
	if !(mean(2) < mean(1) && mean(1) < mean(0)) {
		t.Fatalf("priority did not order the queue: standard %v, high %v, critical %v", mean(0), mean(1), mean(2))
	}

	// Cancel and kill need tasks that run for seconds: a node of the small model (context 256).
	p.cmd.Process.Kill()
	<-p.done
	dir = t.TempDir()
	args = []string{"--model", "neuroshard-small", "--layers", "0-7", "--rate-limit", "inference=0", "--log-level", "info"}
	p = startNode(t, dir, freeAPIPort(t), args...)
	api = client.New(p.api, readToken(t, dir))

	// Cancel: fill both workers with long tasks, then cancel one running and one queued.
	long := func(prio string) string {
		mt := 240
		r, err := api.SubmitTask(ctx, apitypes.TaskRequest{Prompt: &prompt, Priority: prio, MaxTokens: &mt})
		if err != nil {
			t.Fatal(err)
		}
		return r.TaskID
	}
	waitStatus := func(api *client.Client, id, want string, within time.Duration) apitypes.TaskView {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			v, err := api.Task(ctx, id)
			if err == nil && v.Status == want {
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s: %+v %v, want %s", id, v, err, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	a, b, queued := long("critical"), long("critical"), long("standard")
	waitStatus(api, a, "running", 30*time.Second)
	waitStatus(api, b, "running", 30*time.Second)
	if v, err := api.CancelTask(ctx, queued); err != nil || v.Status != "cancelled" {
		t.Fatalf("cancel queued: %+v %v", v, err)
	}
	if v, err := api.CancelTask(ctx, a); err != nil || v.Status != "cancelled" {
		t.Fatalf("cancel running: %+v %v", v, err)
	}

	// Kill: b is running; after the restart it runs again and completes.
	p.cmd.Process.Kill()
	<-p.done
	p = startNode(t, dir, freeAPIPort(t), args...)
	api = client.New(p.api, readToken(t, dir))
	v := waitStatus(api, b, "completed", 3*time.Minute)
	if v.Result == "" {
		t.Fatalf("task after restart: %+v", v)
	}
	if v, _ := api.Task(ctx, queued); v.Status != "cancelled" {
		t.Fatalf("a cancelled task came back as %s", v.Status)
	}
}
