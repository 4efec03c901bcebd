package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// SubmitTask is POST /api/tasks.
func (c *Client) SubmitTask(ctx context.Context, req apitypes.TaskRequest) (apitypes.TaskSubmitted, error) {
	return post[apitypes.TaskSubmitted](ctx, c, "/api/tasks", req)
}

// Task is GET /api/v1/tasks/{id}.
func (c *Client) Task(ctx context.Context, id string) (apitypes.TaskView, error) {
	var out struct {
		Data apitypes.TaskView `json:"data"`
	}
	err := c.Do(ctx, http.MethodGet, "/api/v1/tasks/"+id, nil, &out)
	return out.Data, err
}

// Tasks is GET /api/v1/tasks (status and model filter when not empty).
func (c *Client) Tasks(ctx context.Context, status, model string, limit, offset int) (apitypes.TaskList, error) {
	var out struct {
		Data apitypes.TaskList `json:"data"`
	}
	q := url.Values{"limit": {fmt.Sprint(limit)}, "offset": {fmt.Sprint(offset)}}
	if status != "" {
		q.Set("status", status)
	}
	if model != "" {
		q.Set("model", model)
	}
	err := c.Do(ctx, http.MethodGet, "/api/v1/tasks?"+q.Encode(), nil, &out)
	return out.Data, err
}

// CancelTask is DELETE /api/v1/tasks/{id}.
func (c *Client) CancelTask(ctx context.Context, id string) (apitypes.TaskView, error) {
	var out struct {
		Data apitypes.TaskView `json:"data"`
	}
	err := c.Do(ctx, http.MethodDelete, "/api/v1/tasks/"+id, nil, &out)
	return out.Data, err
}
