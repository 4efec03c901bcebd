package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// Metrics is GET /api/v1/metrics.
func (c *Client) Metrics(ctx context.Context) (apitypes.Metrics, error) {
	return get[apitypes.Metrics](ctx, c, "/api/v1/metrics")
}

// Inference is POST /api/v1/inference without streaming.
func (c *Client) Inference(ctx context.Context, req apitypes.InferenceRequest) (*apitypes.InferenceResponse, error) {
	req.Stream = false
	var out apitypes.InferenceResponse
	if err := c.Do(ctx, http.MethodPost, "/api/v1/inference", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// InferenceStream is POST /api/v1/inference with "stream": true: it calls onEvent for every
// Server-Sent Event in order and returns the last one ([DONE], with the finish reason and the
// usage). An error event from the node comes back as *APIError.
func (c *Client) InferenceStream(ctx context.Context, req apitypes.InferenceRequest, onEvent func(apitypes.TokenEvent) error) (*apitypes.TokenEvent, error) {
	req.Stream = true
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/v1/inference", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "text/event-stream")
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.hc
	hc.Timeout = 0 // a stream lasts as long as the generation; ctx bounds it
	resp, err := hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the node at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		var eb struct {
			Error *APIError `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&eb)
		if eb.Error == nil {
			eb.Error = &APIError{Code: fmt.Sprintf("HTTP_%d", resp.StatusCode)}
		}
		eb.Error.Status = resp.StatusCode
		return nil, eb.Error
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := []byte(strings.TrimPrefix(line, "data: "))
			if event == "error" {
				var eb struct {
					Error *APIError `json:"error"`
				}
				if json.Unmarshal(data, &eb) == nil && eb.Error != nil {
					return nil, eb.Error
				}
				return nil, fmt.Errorf("stream error: %s", data)
			}
			var ev apitypes.TokenEvent
			if err := json.Unmarshal(data, &ev); err != nil {
				return nil, fmt.Errorf("bad event %q: %w", data, err)
			}
			if ev.Token == "[DONE]" && ev.FinishReason != "" {
				return &ev, nil
			}
			if onEvent != nil {
				if err := onEvent(ev); err != nil {
					return nil, err
				}
			}
			event = ""
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("stream ended without [DONE]")
}

// TrainingGlobal is GET /api/training/global.
func (c *Client) TrainingGlobal(ctx context.Context) (apitypes.TrainingGlobal, error) {
	return get[apitypes.TrainingGlobal](ctx, c, "/api/training/global")
}

// TrainingVerify is GET /api/training/verify.
func (c *Client) TrainingVerify(ctx context.Context) (apitypes.TrainingVerify, error) {
	return get[apitypes.TrainingVerify](ctx, c, "/api/training/verify")
}
