package tasks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// order records the prompts a runner ran, in order; block, when set, holds every run until
// it is closed or the run's context ends.
type order struct {
	mu    sync.Mutex
	ran   []string
	block chan struct{}
}

func (o *order) run(ctx context.Context, t Task, progress func(int)) (Outcome, error) {
	if o.block != nil {
		select {
		case <-o.block:
		case <-ctx.Done():
			return Outcome{}, ctx.Err()
		}
	}
	progress(1)
	o.mu.Lock()
	o.ran = append(o.ran, t.Prompt)
	o.mu.Unlock()
	return Outcome{Text: "echo " + t.Prompt, TokensUsed: len(t.Prompt), Node: "me"}, nil
}

func waitFor(t *testing.T, q *Queue, id string, want Status) Task {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := q.Get(id)
		if err == nil && got.Status == want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: %+v %v, want %s", id, got, err, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPriorityOrdersTheQueue(t *testing.T) {
	o := &order{}
	q, err := Open(t.TempDir(), o.run, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var last Task
	var ids []string
	for i, p := range []Priority{Standard, High, Critical, Standard, Critical, High} {
		if last, err = q.Submit(fmt.Sprintf("%s-%d", p, i), "m", p, 5); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, last.ID)
	}
	if q.Ahead(Critical) != 2 || q.Ahead(Standard) != 6 {
		t.Fatalf("ahead: critical %d standard %d", q.Ahead(Critical), q.Ahead(Standard))
	}
	q.Start()
	waitFor(t, q, last.ID, Completed)
	want := []string{"critical-2", "critical-4", "high-1", "high-5", "standard-0", "standard-3"}
	deadline := time.Now().Add(5 * time.Second)
	for {
		o.mu.Lock()
		got := append([]string(nil), o.ran...)
		o.mu.Unlock()
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ran %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, id := range ids { // a task has run before its completion is stored
		waitFor(t, q, id, Completed)
	}
	done, total, err := q.List(Filter{Status: Completed, Limit: 3})
	if err != nil || total != 6 || len(done) != 3 || done[0].Seq != 6 {
		t.Fatalf("list: %d %d %v", len(done), total, err)
	}
	if got := waitFor(t, q, last.ID, Completed); got.Result != "echo "+last.Prompt || got.Node != "me" || got.CompletedAt == nil {
		t.Fatalf("result %+v", got)
	}
}

func TestTasksSurviveARestartAndCancel(t *testing.T) {
	dir := t.TempDir()
	o := &order{block: make(chan struct{})}
	q, err := Open(dir, o.run, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	q.Start()
	running, _ := q.Submit("running", "m", Standard, 5)
	waitFor(t, q, running.ID, Running)
	queued, _ := q.Submit("queued", "m", Standard, 5)
	doomed, _ := q.Submit("doomed", "m", High, 5)
	if c, err := q.Cancel(doomed.ID); err != nil || c.Status != Cancelled {
		t.Fatalf("cancel queued: %+v %v", c, err)
	}
	if _, err := q.Cancel(doomed.ID); !errors.Is(err, ErrFinished) {
		t.Fatalf("cancel twice: %v", err)
	}
	if _, err := q.Cancel("task_nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancel unknown: %v", err)
	}
	if err := q.Close(); err != nil { // the node goes away with one task running, one queued
		t.Fatal(err)
	}

	o2 := &order{}
	q, err = Open(dir, o2.run, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	q.Start()
	if got := waitFor(t, q, running.ID, Completed); got.Attempts != 2 {
		t.Fatalf("interrupted task ran %d times", got.Attempts)
	}
	waitFor(t, q, queued.ID, Completed)
	if got := waitFor(t, q, doomed.ID, Cancelled); got.Result != "" {
		t.Fatal("a cancelled task ran")
	}

	o2.mu.Lock()
	o2.block = make(chan struct{}) // hold the next run (the worker is idle: nothing reads it now)
	o2.mu.Unlock()
	hold, _ := q.Submit("held", "m", Critical, 5)
	waitFor(t, q, hold.ID, Running)
	if c, err := q.Cancel(hold.ID); err != nil || c.Status != Cancelled {
		t.Fatalf("cancel running: %+v %v", c, err)
	}
}
