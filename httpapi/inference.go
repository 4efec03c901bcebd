package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
)

// inference answers POST /api/v1/inference: a JSON answer, or with "stream": true a stream of
// Server-Sent Events, one per piece of text, the last carrying [DONE], the finish reason and
// the usage. A client that disconnects cancels the request's context, which ends generation
// and frees every stage's session.
func (s *Server) inference(c echo.Context) error {
	var req InferenceRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if !req.Stream {
		resp, err := s.backend.Inference(ctx, req, nil)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, resp)
	}
	w := c.Response()
	started := false
	send := func(event string, v any) error {
		raw, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if !started {
			w.Header().Set(echo.HeaderContentType, "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("X-Accel-Buffering", "no")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if event != "" {
			if _, err := fmt.Fprintf(w, "event: %s\n", event); err != nil {
				return err
			}
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", raw); err != nil {
			return err
		}
		w.Flush()
		return nil
	}
	resp, err := s.backend.Inference(ctx, req, func(ev TokenEvent) error { return send("", ev) })
	if err != nil {
		if !started {
			return err // nothing sent yet: an ordinary error answer
		}
		send("error", ErrorBody{Error: toAPIError(err)})
		return nil
	}
	usage := resp.Usage
	return send("", TokenEvent{Token: "[DONE]", Index: resp.TokensGenerated, FinishReason: resp.FinishReason, Usage: &usage})
}
