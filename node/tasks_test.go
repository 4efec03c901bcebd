package node

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

func TestTaskAPI(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Model, cfg.Layers = "neuroshard-tiny", "0-3"
	// The test polls its task every 25 ms: under the race detector the task outlasts seed 003's
	// 60 inference requests a minute, and the requests after the poll would be refused.
	n := startNode(t, cfg, httpapi.WithRateLimits(map[httpapi.Class]int{httpapi.ClassInference: 100000}))
	c := apiClient(n)
	ctx := context.Background()
	prompt := "ROMEO:"
	var sub apitypes.TaskSubmitted
	if err := c.Do(ctx, http.MethodPost, "/api/tasks", apitypes.TaskRequest{Prompt: &prompt, Priority: "high"}, &sub); err != nil {
		t.Fatal(err)
	}
	if !sub.Success || sub.Status != "queued" || !strings.HasPrefix(sub.TaskID, "task_") || sub.Node.ID != n.ID() || sub.EstimatedTime == "" {
		t.Fatalf("submitted %+v", sub)
	}
	var got struct {
		Success bool              `json:"success"`
		Task    apitypes.TaskView `json:"task"`
	}
	eventually(t, time.Minute, "the task to complete", func() bool {
		return c.Do(ctx, http.MethodGet, "/api/tasks/"+sub.TaskID, nil, &got) == nil && got.Task.Status == "completed"
	})
	if got.Task.Result == "" || got.Task.TokensUsed <= 6 || got.Task.Node.ID != n.ID() || got.Task.CompletedAt == "" || got.Task.Priority != "high" {
		t.Fatalf("completed task %+v", got.Task)
	}
	var list struct {
		Data apitypes.TaskList `json:"data"`
	}
	if err := c.Do(ctx, http.MethodGet, "/api/v1/tasks?status=completed&limit=5", nil, &list); err != nil || list.Data.Total != 1 || list.Data.Tasks[0].ID != sub.TaskID {
		t.Fatalf("list %+v %v", list, err)
	}
	if err := c.Do(ctx, http.MethodDelete, "/api/v1/tasks/"+sub.TaskID, nil, nil); !client.IsCode(err, apitypes.CodeInvalidRequest) {
		t.Fatalf("cancel of a finished task: %v", err)
	}
	if err := c.Do(ctx, http.MethodGet, "/api/v1/tasks/task_nope", nil, nil); !client.IsCode(err, apitypes.CodeNotFound) {
		t.Fatalf("unknown task: %v", err)
	}
	for _, bad := range []apitypes.TaskRequest{{Prompt: &prompt, Priority: "urgent"}, {Prompt: &prompt, Model: "llama2:7b"}} {
		if err := c.Do(ctx, http.MethodPost, "/api/v1/tasks", bad, nil); !client.IsCode(err, apitypes.CodeInvalidRequest) {
			t.Fatalf("bad priority or model %+v: %v", bad, err)
		}
	}
	whisper := "whisper-large"
	if err := c.Do(ctx, http.MethodPost, "/api/v1/tasks", apitypes.TaskRequest{Prompt: &prompt, Model: whisper}, nil); !client.IsCode(err, apitypes.CodeModelUnavailable) {
		t.Fatalf("audio model: %v", err)
	}
	// Seed 000's error format on /api/tasks.
	req, _ := http.NewRequest(http.MethodPost, n.APIURL()+"/api/tasks", strings.NewReader(`{"model": "neuroshard-tiny"}`))
	req.Header.Set("Authorization", "Bearer "+n.Token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e struct {
		Success   *bool  `json:"success"`
		Error     string `json:"error"`
		Details   string `json:"details"`
		Timestamp string `json:"timestamp"`
	}
	if json.Unmarshal(raw, &e) != nil || resp.StatusCode != 400 || e.Success == nil || *e.Success || !strings.Contains(e.Details, "prompt") || e.Timestamp == "" {
		t.Fatalf("seed 000 error: %d %s", resp.StatusCode, raw)
	}
	// Details as JSON values, never Go's formatting of a map ("map[field:prompt]").
	if !strings.Contains(e.Details, `field: "prompt"`) || strings.Contains(e.Details, "map[") {
		t.Fatalf("seed 000 details: %q", e.Details)
	}
}

// completeTask submits a task of the tiny length and waits for it to complete; it returns
// the task's ID.
func completeTask(t *testing.T, c *client.Client, prompt string, maxTokens int) string {
	t.Helper()
	ctx := context.Background()
	sub, err := c.SubmitTask(ctx, apitypes.TaskRequest{Prompt: &prompt, MaxTokens: &maxTokens})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the task to complete", func() bool {
		v, err := c.Task(ctx, sub.TaskID)
		return err == nil && v.Status == "completed"
	})
	return sub.TaskID
}
