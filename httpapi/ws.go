package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// Events is the live-event part of the Backend.
type Events interface {
	// Subscribe delivers events until cancel is called; a subscriber that falls behind is
	// dropped (its channel closes).
	Subscribe() (events <-chan apitypes.Event, cancel func())
}

const (
	wsAuthTimeout  = 10 * time.Second
	wsWriteTimeout = 10 * time.Second
	wsPingInterval = 30 * time.Second
	wsMaxMessage   = 4 << 10
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 4096,
	// Browsers send an Origin; the token in the first message is what authenticates, and the
	// API listens on loopback by default.
	CheckOrigin: func(*http.Request) bool { return true },
}

// ws serves GET /ws: the client's first message must be {"type": "auth", "token": "..."};
// then the server pushes events as JSON text messages and pings every 30 s.
func (s *Server) ws(c echo.Context) error {
	conn, err := upgrader.Upgrade(c.Response(), c.Request(), nil)
	if err != nil {
		return nil // the upgrader has answered
	}
	defer conn.Close()
	conn.SetReadLimit(wsMaxMessage)
	conn.SetReadDeadline(time.Now().Add(wsAuthTimeout))
	var hello struct {
		Type  string `json:"type"`
		Token string `json:"token"`
	}
	_, raw, err := conn.ReadMessage()
	if err == nil {
		err = json.Unmarshal(raw, &hello)
	}
	write := func(v any) error {
		conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
		return conn.WriteJSON(v)
	}
	now := func() string { return time.Now().UTC().Format(time.RFC3339Nano) }
	if err != nil || hello.Type != "auth" || subtle.ConstantTimeCompare([]byte(hello.Token), []byte(s.token)) != 1 {
		write(apitypes.Event{Type: "auth.error", Data: map[string]any{"code": apitypes.CodeUnauthorized, "message": "the first message must be {\"type\": \"auth\", \"token\": \"<API token>\"}"}, Timestamp: now()})
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "unauthorized"), time.Now().Add(time.Second))
		return nil
	}
	events, cancel := s.backend.Subscribe()
	defer cancel()
	st := s.backend.Status(c.Request().Context())
	if err := write(apitypes.Event{Type: "auth.ok", Data: map[string]any{"node_id": st.NodeID}, Timestamp: now()}); err != nil {
		return nil
	}
	// The node's state at once, rather than at the next periodic node.status.
	if err := write(apitypes.Event{Type: "node.status", Data: map[string]any{"node_id": st.NodeID, "status": st.Status, "role": st.Role,
		"layers": st.Layers, "peers": st.PeerCount, "training": st.Training, "resources": st.Resources}, Timestamp: now()}); err != nil {
		return nil
	}
	// The reader notices the client leaving (and answers pings); clients send nothing else.
	ctx, stop := context.WithCancel(c.Request().Context())
	defer stop()
	conn.SetReadDeadline(time.Time{})
	go func() {
		defer stop()
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	ping := time.NewTicker(wsPingInterval)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "node stopping"), time.Now().Add(time.Second))
			return nil
		case ev, ok := <-events:
			if !ok { // fell behind
				conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "too slow"), time.Now().Add(time.Second))
				return nil
			}
			if err := write(ev); err != nil {
				return nil
			}
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteTimeout)); err != nil {
				return nil
			}
		}
	}
}
