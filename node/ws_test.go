package node

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

func TestWebSocketPushesTaskEvents(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Model, cfg.Layers = "neuroshard-tiny", "0-3"
	n := startNode(t, cfg)
	url := "ws" + strings.TrimPrefix(n.APIURL(), "http") + "/ws"
	dial := func() *websocket.Conn {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		return c
	}
	read := func(c *websocket.Conn) apitypes.Event {
		t.Helper()
		var ev apitypes.Event
		if err := c.ReadJSON(&ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}

	bad := dial()
	bad.WriteJSON(map[string]string{"type": "auth", "token": "wrong"})
	if ev := read(bad); ev.Type != "auth.error" {
		t.Fatalf("wrong token: %+v", ev)
	}
	_, _, err := bad.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "unauthorized" {
		t.Fatalf("an unauthenticated client must be closed with a reason: %v", err)
	}

	c := dial()
	c.WriteJSON(map[string]string{"type": "auth", "token": n.Token()})
	if ev := read(c); ev.Type != "auth.ok" {
		t.Fatalf("auth: %+v", ev)
	}
	if ev := read(c); ev.Type != "node.status" {
		t.Fatalf("first event: %+v", ev)
	}
	prompt, mt := "ROMEO:", 6
	sub, err := apiClient(n).SubmitTask(context.Background(), apitypes.TaskRequest{Prompt: &prompt, MaxTokens: &mt})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	lastTokens := 0
	for len(order) == 0 || order[len(order)-1] != "task.completed" {
		ev := read(c)
		raw, _ := json.Marshal(ev.Data)
		if !strings.Contains(string(raw), sub.TaskID) {
			continue
		}
		if ev.Type == "task.progress" {
			var p struct{ Tokens int }
			json.Unmarshal(raw, &p)
			if p.Tokens <= lastTokens {
				t.Fatalf("progress went from %d to %d tokens", lastTokens, p.Tokens)
			}
			lastTokens = p.Tokens
			if order[len(order)-1] == "task.progress" {
				continue
			}
		}
		order = append(order, ev.Type)
	}
	if strings.Join(order, ",") != "task.queued,task.started,task.progress,task.completed" || lastTokens < 1 || lastTokens > 6 {
		t.Fatalf("events for the task, in order: %v (last progress %d tokens)", order, lastTokens)
	}
}
