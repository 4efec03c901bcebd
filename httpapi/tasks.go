package httpapi

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// Tasks is the task part of the Backend: the task-style API of seeds 000 (/api/tasks) and
// 002 (/api/v1/tasks).
type Tasks interface {
	SubmitTask(ctx context.Context, req apitypes.TaskRequest) (apitypes.TaskSubmitted, error)
	GetTask(ctx context.Context, id string) (apitypes.TaskView, error)
	ListTasks(ctx context.Context, status, model string, limit, offset int) (apitypes.TaskList, error)
	CancelTask(ctx context.Context, id string) (apitypes.TaskView, error)
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
		if len(e.Details) > 0 { // as JSON values, never Go's formatting of a map
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(e.Details)) {
				v, _ := json.Marshal(e.Details[k])
				parts = append(parts, k+": "+string(v))
			}
			details += " (" + strings.Join(parts, ", ") + ")"
		}
		return c.JSON(e.Status, map[string]any{"success": false, "error": e.Message, "code": e.Code,
			"details": details, "timestamp": time.Now().UTC().Format(time.RFC3339)})
	}
}

func (s *Server) taskRoutes(auth echo.MiddlewareFunc, read echo.MiddlewareFunc, v1 *echo.Group) {
	b := s.backend
	submit := func(c echo.Context) error {
		var req apitypes.TaskRequest
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
	// Seed 000's beta sign-up belongs to the project's website: a node keeps no list of people.
	// It says so in the seed's error format rather than answering an unknown route.
	s.e.POST("/api/beta/signup", func(c echo.Context) error {
		return apitypes.NotFound("beta sign-ups are taken by the project's website: a node keeps no sign-up list",
			map[string]any{"endpoint": "/api/beta/signup"})
	}, taskError, read)
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
