package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// The OpenAI-compatible endpoints: POST /v1/completions, POST /v1/chat/completions (both with
// "stream": true as Server-Sent Events ending in [DONE]; the usage in a last chunk of its own
// only when stream_options.include_usage asks), GET /v1/models and GET /v1/models/{id}, so that clients
// written for OpenAI's API work against a node by changing only their base URL and key (the
// node's token). Requests are decoded leniently (unknown options are ignored), errors take
// OpenAI's shape.

// openAIError renders errors as OpenAI's API does: {"error": {"message", "type", "param",
// "code"}}.
func openAIError(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if err == nil || c.Response().Committed {
			return err
		}
		e := toAPIError(err)
		return c.JSON(e.Status, openAIErrorBody(e))
	}
}

func openAIErrorBody(e *apitypes.Error) map[string]any {
	typ := "invalid_request_error"
	switch {
	case e.Status == http.StatusUnauthorized:
		typ = "authentication_error"
	case e.Status == http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case e.Status == http.StatusPaymentRequired:
		typ = "insufficient_quota"
	case e.Status >= 500:
		typ = "server_error"
	}
	var param any
	if f, ok := e.Details["field"]; ok {
		param = f
	}
	return map[string]any{"error": map[string]any{"message": e.Message, "type": typ, "param": param, "code": strings.ToLower(e.Code)}}
}

const (
	defaultCompletionTokens = 16  // OpenAI's default for /v1/completions
	defaultChatTokens       = 128 // chat has no fixed default; the context bounds it anyway
	maxStops                = 4
)

// oneOrMany reads a JSON string or array of strings.
func oneOrMany(raw json.RawMessage, field string) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, apitypes.InvalidRequest(field+" must be a string or an array of strings", map[string]any{"field": field})
	}
	return many, nil
}

// samplingFrom builds the node's request from OpenAI's common fields.
func samplingFrom(model string, n *int, maxTokens *int, temp, topP *float64, stop json.RawMessage, seed *uint64, defTokens int, served string) (apitypes.InferenceRequest, error) {
	var req apitypes.InferenceRequest
	if model != served {
		return req, apitypes.NewError(http.StatusNotFound, "MODEL_NOT_FOUND", fmt.Sprintf("The model %q does not exist; this network serves %q", model, served),
			map[string]any{"field": "model"})
	}
	if n != nil && *n != 1 {
		return req, apitypes.InvalidRequest("n must be 1: the node generates one choice per request", map[string]any{"field": "n"})
	}
	stops, err := oneOrMany(stop, "stop")
	if err != nil {
		return req, err
	}
	if len(stops) > maxStops {
		return req, apitypes.InvalidRequest(fmt.Sprintf("at most %d stop sequences", maxStops), map[string]any{"field": "stop"})
	}
	mt := defTokens
	if maxTokens != nil {
		mt = *maxTokens
	}
	req.MaxTokens, req.Temperature, req.TopP, req.Stop, req.Seed = &mt, temp, topP, stops, seed
	return req, nil
}

// chatPrompt renders messages as a transcript the model continues as the assistant.
func chatPrompt(msgs []apitypes.OpenAIChatMessage) (string, error) {
	if len(msgs) == 0 {
		return "", apitypes.InvalidRequest("messages must hold at least one message", map[string]any{"field": "messages"})
	}
	var b strings.Builder
	for i, m := range msgs {
		role := strings.ToLower(m.Role)
		switch role {
		case "system", "developer", "user", "assistant":
		default:
			return "", apitypes.InvalidRequest(fmt.Sprintf("messages[%d].role %q: want system, user or assistant", i, m.Role), map[string]any{"field": "messages"})
		}
		text, err := messageText(m.Content)
		if err != nil {
			return "", apitypes.InvalidRequest(fmt.Sprintf("messages[%d].content: %v", i, err), map[string]any{"field": "messages"})
		}
		if role == "developer" {
			role = "system"
		}
		fmt.Fprintf(&b, "%s%s: %s\n", strings.ToUpper(role[:1]), role[1:], text)
	}
	b.WriteString("Assistant:")
	return b.String(), nil
}

func messageText(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", fmt.Errorf("a string or an array of text parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("part of type %q: this model reads text only", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

func openAIID(prefix string) string { return prefix + "-" + fmt.Sprint(time.Now().UnixNano()) }

func (s *Server) openAIRoutes(mw ...echo.MiddlewareFunc) {
	g := s.e.Group("/v1", append([]echo.MiddlewareFunc{openAIError}, mw...)...)
	g.GET("/models", func(c echo.Context) error {
		list := s.backend.Models(c.Request().Context())
		data := make([]map[string]any, 0, len(list.Models))
		for _, m := range list.Models {
			data = append(data, map[string]any{"id": m.ID, "object": "model", "created": m.Created, "owned_by": "neuroshard"})
		}
		return c.JSON(http.StatusOK, map[string]any{"object": "list", "data": data})
	})
	g.GET("/models/:id", func(c echo.Context) error {
		id := c.Param("id")
		for _, m := range s.backend.Models(c.Request().Context()).Models {
			if m.ID == id {
				return c.JSON(http.StatusOK, map[string]any{"id": m.ID, "object": "model", "created": m.Created, "owned_by": "neuroshard"})
			}
		}
		return apitypes.NewError(http.StatusNotFound, "MODEL_NOT_FOUND", fmt.Sprintf("The model %q does not exist on this network", id), map[string]any{"field": "model"})
	})
	g.POST("/completions", s.openAICompletion)
	g.POST("/chat/completions", s.openAIChat)
}

func (s *Server) servedModel(c echo.Context) string {
	if list := s.backend.Models(c.Request().Context()); len(list.Models) > 0 {
		return list.Models[0].ID
	}
	return ""
}

func (s *Server) openAICompletion(c echo.Context) error {
	var r apitypes.OpenAICompletionRequest
	if err := decodeLenient(c, &r); err != nil {
		return err
	}
	prompts, err := oneOrMany(r.Prompt, "prompt")
	if err != nil {
		return err
	}
	if len(prompts) != 1 {
		return apitypes.InvalidRequest("prompt must be one string (or an array of one)", map[string]any{"field": "prompt"})
	}
	req, err := samplingFrom(r.Model, r.N, r.MaxTokens, r.Temperature, r.TopP, r.Stop, r.Seed, defaultCompletionTokens, s.servedModel(c))
	if err != nil {
		return err
	}
	req.Prompt = &prompts[0]
	id, created := openAIID("cmpl"), time.Now().Unix()
	chunk := func(text string, finish any) map[string]any {
		return map[string]any{"id": id, "object": "text_completion", "created": created, "model": r.Model,
			"choices": []map[string]any{{"text": text, "index": 0, "logprobs": nil, "finish_reason": finish}}}
	}
	usage := r.StreamOptions.WantsUsage()
	streamed := func(m map[string]any) map[string]any {
		if usage {
			m["usage"] = nil // OpenAI's streams with usage: null on every chunk but the last
		}
		return m
	}
	return s.openAIRun(c, req, r.Stream, usage, func(text string) any { return streamed(chunk(text, nil)) },
		func(resp *apitypes.InferenceResponse) any {
			out := chunk(resp.Text, resp.FinishReason)
			out["usage"] = resp.Usage
			return out
		},
		func(resp *apitypes.InferenceResponse) any { return streamed(chunk("", resp.FinishReason)) },
		func(resp *apitypes.InferenceResponse) any {
			return map[string]any{"id": id, "object": "text_completion", "created": created, "model": r.Model,
				"choices": []any{}, "usage": resp.Usage}
		})
}

func (s *Server) openAIChat(c echo.Context) error {
	var r apitypes.OpenAIChatRequest
	if err := decodeLenient(c, &r); err != nil {
		return err
	}
	prompt, err := chatPrompt(r.Messages)
	if err != nil {
		return err
	}
	mt := r.MaxTokens
	if r.MaxCompletionTokens != nil {
		mt = r.MaxCompletionTokens
	}
	req, err := samplingFrom(r.Model, r.N, mt, r.Temperature, r.TopP, r.Stop, r.Seed, defaultChatTokens, s.servedModel(c))
	if err != nil {
		return err
	}
	if len(req.Stop) < maxStops {
		req.Stop = append(req.Stop, "\nUser:") // the transcript's next turn is not the assistant's to write
	}
	req.Prompt = &prompt
	id, created := openAIID("chatcmpl"), time.Now().Unix()
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": r.Model,
			"choices": []map[string]any{{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}}
	}
	first := true
	usage := r.StreamOptions.WantsUsage()
	streamed := func(m map[string]any) map[string]any {
		if usage {
			m["usage"] = nil
		}
		return m
	}
	return s.openAIRun(c, req, r.Stream, usage,
		func(text string) any {
			d := map[string]any{"content": text}
			if first {
				d["role"], first = "assistant", false
			}
			return streamed(chunk(d, nil))
		},
		func(resp *apitypes.InferenceResponse) any {
			return map[string]any{"id": id, "object": "chat.completion", "created": created, "model": r.Model,
				"choices": []map[string]any{{"index": 0, "message": map[string]any{"role": "assistant", "content": strings.TrimPrefix(resp.Text, " ")},
					"logprobs": nil, "finish_reason": resp.FinishReason}},
				"usage": resp.Usage}
		},
		func(resp *apitypes.InferenceResponse) any {
			return streamed(chunk(map[string]any{}, resp.FinishReason))
		},
		func(resp *apitypes.InferenceResponse) any {
			return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": r.Model,
				"choices": []any{}, "usage": resp.Usage}
		})
}

// openAIRun generates and answers: one JSON object (whole), or SSE chunks (piece) closed by a
// final chunk (last), with usage a chunk of the usage (usageChunk), and [DONE].
func (s *Server) openAIRun(c echo.Context, req apitypes.InferenceRequest, stream, usage bool, piece func(string) any, whole, last, usageChunk func(*apitypes.InferenceResponse) any) error {
	ctx := c.Request().Context()
	if !stream {
		resp, err := s.backend.Inference(ctx, req, nil)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, whole(resp))
	}
	out := &sse{w: c.Response()}
	resp, err := s.backend.Inference(ctx, req, func(ev apitypes.TokenEvent) error { return out.send("", piece(ev.Token)) })
	if err != nil {
		if !out.started {
			return err
		}
		out.send("", openAIErrorBody(toAPIError(err)))
		return nil
	}
	if err := out.send("", last(resp)); err != nil {
		return nil
	}
	if usage {
		if err := out.send("", usageChunk(resp)); err != nil {
			return nil
		}
	}
	out.send("", "[DONE]")
	return nil
}
