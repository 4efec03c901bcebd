package nodeapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/ledger/neuro"
	"github.com/neuroshard/neuroshard/tasks"
)

// The task API (seeds 000 and 002): a task is a text generation that the node queues durably,
// runs by priority through the same route as POST /inference, and keeps with its result.

const (
	taskWorkers      = 4 // generations at once: a stage steps them together
	defaultTaskLimit = 100
)

// otherModalities are model names of other kinds that clients of the task API ask for; no
// peer of this network advertises them.
var otherModalities = []string{"stable-diffusion", "sdxl", "whisper", "dall-e", "image", "audio"}

// taskRouteWait bounds how long a task waits for the network to cover the model (a node that
// just started, or lost a peer) before it fails.
const taskRouteWait = 2 * time.Minute

func (a *API) runTask(ctx context.Context, t tasks.Task, progress func(int)) (tasks.Outcome, error) {
	prompt, maxTokens := t.Prompt, t.MaxTokens
	deadline := time.Now().Add(taskRouteWait)
	var resp *apitypes.InferenceResponse
	var err error
	for {
		resp, err = a.Inference(ctx, apitypes.InferenceRequest{Prompt: &prompt, MaxTokens: &maxTokens}, func(ev apitypes.TokenEvent) error {
			progress(ev.Index + 1)
			return nil
		})
		var apiErr *apitypes.Error
		if err == nil || !errors.As(err, &apiErr) || apiErr.Details["missing_layers"] == nil || time.Now().After(deadline) {
			break
		}
		select { // no route yet: wait for peers rather than fail
		case <-ctx.Done():
			return tasks.Outcome{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if err != nil {
		return tasks.Outcome{}, err
	}
	return tasks.Outcome{Text: resp.Text, TokensUsed: resp.Usage.TotalTokens, Cost: int64(resp.Cost.Amount), Node: a.node.ID()}, nil
}

// SubmitTask implements httpapi.Tasks.
func (a *API) SubmitTask(ctx context.Context, req apitypes.TaskRequest) (apitypes.TaskSubmitted, error) {
	var out apitypes.TaskSubmitted
	if req.Prompt == nil || strings.TrimSpace(*req.Prompt) == "" {
		return out, apitypes.InvalidRequest("The 'prompt' field is required", map[string]any{"field": "prompt"})
	}
	if err := a.checkModel(req.Model); err != nil {
		return out, err
	}
	prio, err := tasks.ParsePriority(req.Priority)
	if err != nil {
		return out, apitypes.InvalidRequest(err.Error(), map[string]any{"field": "priority"})
	}
	maxTokens := defaultTaskLimit
	if req.MaxTokens != nil {
		maxTokens = *req.MaxTokens
	}
	if maxTokens < 1 || maxTokens > maxMaxTokens {
		return out, apitypes.InvalidRequest(fmt.Sprintf("max_tokens must be 1-%d", maxMaxTokens), map[string]any{"field": "max_tokens"})
	}
	if l := len(layers.Encode(*req.Prompt)); l >= a.model.Context {
		return out, apitypes.InvalidRequest(fmt.Sprintf("prompt is %d tokens; the model's context is %d", l, a.model.Context), map[string]any{"field": "prompt"})
	}
	ahead := a.tasks.Ahead(prio)
	t, err := a.tasks.Submit(*req.Prompt, a.model.Name, prio, maxTokens)
	if err != nil {
		if errors.Is(err, tasks.ErrFull) {
			return out, apitypes.NewError(http.StatusServiceUnavailable, apitypes.CodeNodeUnavailable, err.Error(), map[string]any{"retry_after": 30})
		}
		return out, apitypes.NewError(http.StatusServiceUnavailable, apitypes.CodeNodeUnavailable, err.Error(), nil)
	}
	tokens := neuro.Amount(len(layers.Encode(*req.Prompt)) + maxTokens)
	return apitypes.TaskSubmitted{Success: true, TaskID: t.ID, Status: string(t.Status), Position: ahead,
		EstimatedTime: a.tasks.Estimate(ahead).Round(100 * time.Millisecond).String(),
		Node:          apitypes.TaskNode{ID: a.node.ID()},
		Cost:          apitypes.TaskCost{Estimated: a.ledger.Params().PricePerToken * tokens, Currency: "NEURO"},
		Message:       "Task queued for processing"}, nil
}

// checkModel accepts the network's model (or no model).
func (a *API) checkModel(m string) error {
	if m == "" || m == a.model.Name {
		return nil
	}
	for _, o := range otherModalities {
		if strings.Contains(strings.ToLower(m), o) {
			return apitypes.NewError(http.StatusServiceUnavailable, apitypes.CodeModelUnavailable,
				fmt.Sprintf("no peer of this network serves %q; it serves the text model %s", m, a.model.Name),
				map[string]any{"model": m, "available": []string{a.model.Name}})
		}
	}
	return apitypes.InvalidRequest(fmt.Sprintf("unknown model %q; this network serves %s", m, a.model.Name),
		map[string]any{"field": "model", "available": []string{a.model.Name}})
}

func taskView(t tasks.Task) apitypes.TaskView {
	v := apitypes.TaskView{ID: t.ID, Status: string(t.Status), Type: "text-generation", Model: t.Model, Priority: string(t.Priority),
		Prompt: t.Prompt, Result: t.Result, Error: t.Error, CreatedAt: t.CreatedAt.Format(time.RFC3339Nano),
		Cost: neuro.Amount(t.Cost), TokensUsed: t.TokensUsed, Node: apitypes.TaskNode{ID: t.Node}, NodeID: t.Node}
	if t.StartedAt != nil {
		v.StartedAt = t.StartedAt.Format(time.RFC3339Nano)
	}
	if t.CompletedAt != nil {
		v.CompletedAt = t.CompletedAt.Format(time.RFC3339Nano)
		if t.StartedAt != nil {
			v.ProcessingTime = t.CompletedAt.Sub(*t.StartedAt).Seconds()
		}
	}
	return v
}

func taskError(err error, id string) error {
	switch {
	case errors.Is(err, tasks.ErrNotFound):
		return apitypes.NotFound("no task "+id, map[string]any{"task_id": id})
	case errors.Is(err, tasks.ErrFinished):
		return apitypes.NewError(http.StatusConflict, apitypes.CodeInvalidRequest, err.Error(), map[string]any{"task_id": id})
	}
	return apitypes.NewError(http.StatusInternalServerError, apitypes.CodeInternal, err.Error(), nil)
}

// GetTask implements httpapi.Tasks.
func (a *API) GetTask(ctx context.Context, id string) (apitypes.TaskView, error) {
	t, err := a.tasks.Get(id)
	if err != nil {
		return apitypes.TaskView{}, taskError(err, id)
	}
	return taskView(t), nil
}

// ListTasks implements httpapi.Tasks.
func (a *API) ListTasks(ctx context.Context, status, model string, limit, offset int) (apitypes.TaskList, error) {
	st := tasks.Status(status)
	if status == "pending" { // seed 002's word for queued
		st = tasks.Queued
	}
	switch st {
	case "", tasks.Queued, tasks.Running, tasks.Completed, tasks.Failed, tasks.Cancelled:
	default:
		return apitypes.TaskList{}, apitypes.InvalidRequest("status must be pending, queued, running, completed, failed or cancelled", map[string]any{"status": status})
	}
	ts, total, err := a.tasks.List(tasks.Filter{Status: st, Model: model, Limit: limit, Offset: offset})
	if err != nil {
		return apitypes.TaskList{}, taskError(err, "")
	}
	out := apitypes.TaskList{Tasks: make([]apitypes.TaskView, 0, len(ts)), Total: total, Limit: limit, Offset: offset}
	for _, t := range ts {
		out.Tasks = append(out.Tasks, taskView(t))
	}
	return out, nil
}

// CancelTask implements httpapi.Tasks.
func (a *API) CancelTask(ctx context.Context, id string) (apitypes.TaskView, error) {
	t, err := a.tasks.Cancel(id)
	if err != nil {
		return apitypes.TaskView{}, taskError(err, id)
	}
	return taskView(t), nil
}
