package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// inference answers POST /api/v1/inference: a JSON answer, or with "stream": true a stream of
// Server-Sent Events, one per piece of text, the last carrying [DONE], the finish reason and
// the usage. A client that disconnects cancels the request's context, which ends generation
// and frees every stage's session.
func (s *Server) inference(c echo.Context) error {
	var req apitypes.InferenceRequest
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
	out := &sse{w: c.Response()}
	send := out.send
	started := func() bool { return out.started }
	resp, err := s.backend.Inference(ctx, req, func(ev apitypes.TokenEvent) error { return send("", ev) })
	if err != nil {
		if !started() {
			return err // nothing sent yet: an ordinary error answer
		}
		send("error", apitypes.ErrorBody{Error: toAPIError(err)})
		return nil
	}
	usage := resp.Usage
	return send("", apitypes.TokenEvent{Token: "[DONE]", Index: resp.TokensGenerated, FinishReason: resp.FinishReason, Usage: &usage})
}
