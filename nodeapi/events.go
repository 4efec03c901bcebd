package nodeapi

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/tasks"
)

// Live events for the WebSocket: task events from the queue, node.status every
// statusInterval, and system.alert when something needs an operator's eye (the model lost
// coverage or got it back, an equivocation was recorded).

const (
	statusInterval = 30 * time.Second
	subscriberBuf  = 256
)

type eventBus struct {
	mu     sync.Mutex
	subs   map[int]chan apitypes.Event
	next   int
	closed bool
}

// Subscribe implements httpapi.Events.
func (a *API) Subscribe() (<-chan apitypes.Event, func()) {
	b := &a.events
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan apitypes.Event, subscriberBuf)
	if b.closed {
		close(ch)
		return ch, func() {}
	}
	if b.subs == nil {
		b.subs = map[int]chan apitypes.Event{}
	}
	id := b.next
	b.next++
	b.subs[id] = ch
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if c, ok := b.subs[id]; ok {
			delete(b.subs, id)
			close(c)
		}
	}
}

// publish sends an event to every subscriber; one whose buffer is full is dropped.
func (a *API) publish(typ string, data any) {
	ev := apitypes.Event{Type: typ, Data: data, Timestamp: time.Now().UTC().Format(time.RFC3339Nano)}
	b := &a.events
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, ch := range b.subs {
		select {
		case ch <- ev:
		default:
			delete(b.subs, id)
			close(ch)
		}
	}
}

func (a *API) closeEvents() {
	b := &a.events
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for id, ch := range b.subs {
		delete(b.subs, id)
		close(ch)
	}
}

// taskEvent forwards the queue's events.
func (a *API) taskEvent(e tasks.Event) {
	if e.Type == "task.failed" {
		logger().Warn("task failed", "task", e.Task.ID, "err", e.Task.Error)
	}
	if e.Type == "task.progress" {
		a.publish(e.Type, map[string]any{"task_id": e.Task.ID, "tokens": e.Tokens, "max_tokens": e.Task.MaxTokens})
		return
	}
	a.publish(e.Type, taskView(e.Task))
}

// statusLoop publishes node.status and raises alerts on changes.
func (a *API) statusLoop() {
	defer a.wg.Done()
	t := time.NewTicker(statusInterval)
	defer t.Stop()
	var missing []int
	equivocations := -1
	for {
		ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
		st := a.Status(ctx)
		cov := a.cov.Get(ctx)
		cancel()
		a.publish("node.status", map[string]any{"node_id": st.NodeID, "status": st.Status, "role": st.Role, "layers": st.Layers,
			"peers": st.PeerCount, "training": st.Training, "resources": st.Resources})
		switch {
		case len(cov.Missing) > 0 && !slices.Equal(cov.Missing, missing):
			a.publish("system.alert", map[string]any{"level": "warning", "code": "COVERAGE_INCOMPLETE",
				"message": fmt.Sprintf("no reachable peer holds layers %s of %s: inference and training wait", layerList(cov.Missing), a.model.Name), "missing_layers": cov.Missing})
		case len(cov.Missing) == 0 && len(missing) > 0:
			a.publish("system.alert", map[string]any{"level": "info", "code": "COVERAGE_RESTORED", "message": "every layer is held again"})
		}
		missing = cov.Missing
		if eq := a.ledgerView().Equivocations; equivocations >= 0 && eq > equivocations {
			a.publish("system.alert", map[string]any{"level": "warning", "code": "EQUIVOCATION",
				"message": fmt.Sprintf("%d new equivocating transactions refused by the ledger", eq-equivocations)})
			equivocations = eq
		} else if equivocations < 0 {
			equivocations = eq
		}
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// layerList writes layer indices for a message: "2, 3, 5".
func layerList(ls []int) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = strconv.Itoa(l)
	}
	return strings.Join(parts, ", ")
}
