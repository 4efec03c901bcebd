package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/ledger"
)

// Tasks is the task part of the Backend: the task-style API of seeds 000 (/api/tasks) and
// 002 (/api/v1/tasks).
type Tasks interface {
	SubmitTask(ctx context.Context, req TaskRequest) (TaskSubmitted, error)
	GetTask(ctx context.Context, id string) (TaskView, error)
	ListTasks(ctx context.Context, status, model string, limit, offset int) (TaskList, error)
	CancelTask(ctx context.Context, id string) (TaskView, error)
}

// TaskRequest is POST /api/tasks.
type TaskRequest struct {
	Prompt    *string `json:"prompt"`
	Model     string  `json:"model,omitempty"`    // default: the network's model
	Priority  string  `json:"priority,omitempty"` // standard (default), high, critical
	MaxTokens *int    `json:"max_tokens,omitempty"`
}

// TaskNode names the node that runs a task.
type TaskNode struct {
	ID       string `json:"id"`
	Location string `json:"location,omitempty"`
}

// TaskCost is a task's estimated cost in NEURO.
type TaskCost struct {
	Estimated ledger.Amount `json:"estimated"` // upper bound: every token up to max_tokens
	Currency  string        `json:"currency"`
}

// TaskSubmitted answers POST /api/tasks.
type TaskSubmitted struct {
	Success       bool     `json:"success"`
	TaskID        string   `json:"task_id"`
	Status        string   `json:"status"`
	EstimatedTime string   `json:"estimated_time"`
	Position      int      `json:"position"` // tasks that run before it
	Node          TaskNode `json:"node"`
	Cost          TaskCost `json:"cost"`
	Message       string   `json:"message"`
}

// TaskView is a task as the API shows it.
type TaskView struct {
	ID             string        `json:"id"`
	Status         string        `json:"status"`
	Type           string        `json:"type"`
	Model          string        `json:"model"`
	Priority       string        `json:"priority"`
	Prompt         string        `json:"prompt"`
	Result         string        `json:"result,omitempty"`
	Error          string        `json:"error,omitempty"`
	CreatedAt      string        `json:"created_at"`
	StartedAt      string        `json:"started_at,omitempty"`
	CompletedAt    string        `json:"completed_at,omitempty"`
	ProcessingTime float64       `json:"processing_time,omitempty"` // seconds
	Cost           ledger.Amount `json:"cost"`
	TokensUsed     int           `json:"tokens_used"`
	Node           TaskNode      `json:"node"`
	NodeID         string        `json:"node_id"`
}

// TaskList is the data of GET /api/v1/tasks.
type TaskList struct {
	Tasks  []TaskView `json:"tasks"`
	Total  int        `json:"total"`
	Limit  int        `json:"limit"`
	Offset int        `json:"offset"`
}

// taskError renders errors as seed 000 does: {"success": false, "error", "details",
// "timestamp"}; the code and status are those of seed 003.
func taskError(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if err == nil || c.Response().Committed {
			return err
		}
		e := toAPIError(err)
		details := e.Message
		if len(e.Details) > 0 {
			details = fmt.Sprintf("%s %v", e.Message, e.Details)
		}
		return c.JSON(e.Status, map[string]any{"success": false, "error": e.Message, "code": e.Code,
			"details": details, "timestamp": time.Now().UTC().Format(time.RFC3339)})
	}
}

func (s *Server) taskRoutes(auth echo.MiddlewareFunc, read echo.MiddlewareFunc, v1 *echo.Group) {
	b := s.backend
	submit := func(c echo.Context) error {
		var req TaskRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		v, err := b.SubmitTask(c.Request().Context(), req)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusAccepted, v)
	}
	g := s.e.Group("/api/tasks", taskError, read, auth)
	g.POST("", submit)
	g.GET("/:id", func(c echo.Context) error {
		v, err := b.GetTask(c.Request().Context(), c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"success": true, "task": v})
	})

	t := v1.Group("/tasks", seed002, read, auth)
	t.POST("", submit)
	t.GET("", func(c echo.Context) error {
		limit, offset, err := pageOf(c, 50)
		if err != nil {
			return err
		}
		v, err := b.ListTasks(c.Request().Context(), c.QueryParam("status"), c.QueryParam("model"), limit, offset)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"success": true, "data": v})
	})
	t.GET("/:id", func(c echo.Context) error {
		v, err := b.GetTask(c.Request().Context(), c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"success": true, "data": v})
	})
	t.DELETE("/:id", func(c echo.Context) error {
		v, err := b.CancelTask(c.Request().Context(), c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"success": true, "data": v})
	})
}
