package node

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/neuroshard/neuroshard/httpapi"
)

func TestWebSocketPushesTaskEvents(t *testing.T) {
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
	read := func(c *websocket.Conn) httpapi.Event {
		t.Helper()
		var ev httpapi.Event
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
	if _, _, err := bad.ReadMessage(); err == nil {
		t.Fatal("the connection stayed open after a failed auth")
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
	sub, err := apiClient(n).SubmitTask(context.Background(), httpapi.TaskRequest{Prompt: &prompt, MaxTokens: &mt})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for seen["task.completed"] == 0 {
		ev := read(c)
		raw, _ := json.Marshal(ev.Data)
		if !strings.Contains(string(raw), sub.TaskID) {
			continue
		}
		seen[ev.Type]++
	}
	if seen["task.queued"] != 1 || seen["task.started"] != 1 || seen["task.progress"] < 1 {
		t.Fatalf("events for the task: %v", seen)
	}
}
