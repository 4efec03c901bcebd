package node

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// An OpenAI-style client (plain HTTP, as the official SDKs send it) against a node.
func TestOpenAICompatibleEndpoints(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Model, cfg.Layers = "neuroshard-tiny", "0-3"
	n := startNode(t, cfg)
	post := func(path, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, n.APIURL()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+n.Token())
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	decode := func(resp *http.Response, v any) {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}

	var comp struct {
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Text         string `json:"text"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	// Options the node has no use for (logit_bias, user, presence_penalty) are ignored.
	resp := post("/v1/completions", `{"model":"neuroshard-tiny","prompt":"ROMEO:","max_tokens":5,"temperature":0,"logit_bias":{},"user":"x","presence_penalty":0}`)
	decode(resp, &comp)
	if resp.StatusCode != 200 || comp.Object != "text_completion" || len(comp.Choices) != 1 || comp.Usage.CompletionTokens != 5 || comp.Choices[0].FinishReason != "length" {
		t.Fatalf("completion %d %+v", resp.StatusCode, comp)
	}

	var chat struct {
		Object  string `json:"object"`
		Choices []struct {
			Message struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	resp = post("/v1/chat/completions", `{"model":"neuroshard-tiny","messages":[{"role":"system","content":"Speak verse."},{"role":"user","content":[{"type":"text","text":"Who art thou?"}]}],"max_tokens":8,"temperature":0}`)
	decode(resp, &chat)
	if resp.StatusCode != 200 || chat.Object != "chat.completion" || len(chat.Choices) != 1 || chat.Choices[0].Message.Role != "assistant" {
		t.Fatalf("chat %d %+v", resp.StatusCode, chat)
	}

	// Streaming: chunks, a final chunk with the finish reason, then [DONE].
	resp = post("/v1/chat/completions", `{"model":"neuroshard-tiny","messages":[{"role":"user","content":"Hi"}],"max_tokens":6,"stream":true}`)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("stream content type %q", ct)
	}
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			events = append(events, d)
		}
	}
	// Sampled (temperature 1): the text may end at EOS before max_tokens.
	last := events[max(0, len(events)-2)]
	if len(events) < 3 || events[len(events)-1] != "[DONE]" || !strings.Contains(events[0], `"role":"assistant"`) ||
		!strings.Contains(last, `"finish_reason":"length"`) && !strings.Contains(last, `"finish_reason":"stop"`) {
		t.Fatalf("stream events %q", events)
	}

	for _, e := range events {
		if strings.Contains(e, `"usage"`) {
			t.Fatalf("usage in a stream that did not ask for it: %s", e)
		}
	}
	// With stream_options.include_usage: usage null on every chunk, then a last chunk of its
	// own with no choices and the usage, then [DONE]; the text is the non-streamed one.
	resp = post("/v1/completions", `{"model":"neuroshard-tiny","prompt":"ROMEO:","max_tokens":5,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}`)
	events = events[:0]
	sc = bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			events = append(events, d)
		}
	}
	var streamed strings.Builder
	for _, e := range events[:len(events)-2] {
		var ch struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
			Usage *json.RawMessage `json:"usage"`
		}
		if err := json.Unmarshal([]byte(e), &ch); err != nil || len(ch.Choices) != 1 || !strings.Contains(e, `"usage":null`) {
			t.Fatalf("a chunk of a stream with usage: %s %v", e, err)
		}
		streamed.WriteString(ch.Choices[0].Text)
	}
	usageChunk := events[len(events)-2]
	if !strings.Contains(usageChunk, `"choices":[]`) || !strings.Contains(usageChunk, `"completion_tokens":5`) || events[len(events)-1] != "[DONE]" {
		t.Fatalf("the usage chunk: %q", events[len(events)-2:])
	}
	if streamed.String() != comp.Choices[0].Text {
		t.Fatalf("streamed %q, not streamed %q", streamed.String(), comp.Choices[0].Text)
	}

	get := func(path string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, n.APIURL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+n.Token())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	var one struct {
		ID, Object string
	}
	if resp := get("/v1/models/neuroshard-tiny"); resp.StatusCode != 200 {
		t.Fatalf("GET /v1/models/neuroshard-tiny: %d", resp.StatusCode)
	} else if decode(resp, &one); one.ID != "neuroshard-tiny" || one.Object != "model" {
		t.Fatalf("GET /v1/models/neuroshard-tiny: %+v", one)
	}
	var missing struct {
		Error struct{ Type, Code string }
	}
	if resp := get("/v1/models/gpt-4"); resp.StatusCode != 404 {
		t.Fatalf("GET /v1/models/gpt-4: %d", resp.StatusCode)
	} else if decode(resp, &missing); missing.Error.Code != "model_not_found" || missing.Error.Type != "invalid_request_error" {
		t.Fatalf("GET /v1/models/gpt-4: %+v", missing)
	}

	var models struct {
		Object string `json:"object"`
		Data   []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	req, _ := http.NewRequest(http.MethodGet, n.APIURL()+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+n.Token())
	mresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer mresp.Body.Close()
	decode(mresp, &models)
	if models.Object != "list" || len(models.Data) != 1 || models.Data[0].ID != "neuroshard-tiny" {
		t.Fatalf("models %+v", models)
	}

	// Errors in OpenAI's shape.
	for _, c := range []struct {
		path, body, code string
		status           int
	}{
		{"/v1/completions", `{"model":"gpt-4","prompt":"x"}`, "model_not_found", 404},
		{"/v1/completions", `{"model":"neuroshard-tiny","prompt":"x","n":2}`, "invalid_request", 400},
		{"/v1/completions", `{"model":"neuroshard-tiny","prompt":5}`, "invalid_request", 400},
		{"/v1/chat/completions", `{"model":"neuroshard-tiny","messages":[]}`, "invalid_request", 400},
		{"/v1/chat/completions", `{"model":"neuroshard-tiny","messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, "invalid_request", 400},
		{"/v1/chat/completions", `{"model":`, "invalid_request", 400},
	} {
		resp := post(c.path, c.body)
		var e struct {
			Error struct {
				Message string `json:"message"`
				Type    string `json:"type"`
				Code    string `json:"code"`
			} `json:"error"`
		}
		decode(resp, &e)
		if resp.StatusCode != c.status || e.Error.Code != c.code || e.Error.Message == "" || e.Error.Type == "" {
			t.Errorf("%s %s: %d %+v", c.path, c.body, resp.StatusCode, e)
		}
	}
}
