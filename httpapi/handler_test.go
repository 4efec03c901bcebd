package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/httpapi"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/node"
)

// The handlers against the real backend: a real node (tiny model, every layer, 127.0.0.1),
// its nodeapi backend, and echo's handler driven with httptest's recorder: no listener.

func realNode(t *testing.T) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.DataDir, cfg.Port, cfg.Host, cfg.Model = t.TempDir(), 0, "127.0.0.1", "neuroshard-tiny"
	cfg.BootstrapInterval, cfg.CoverageInterval = 200*time.Millisecond, 100*time.Millisecond
	off := false
	cfg.Train = &off
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

type call struct {
	method, path, body string
	token              bool
}

func do(t *testing.T, h http.Handler, token string, c call) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s %s: not JSON (%v): %q", c.method, c.path, err, rec.Body.String())
	}
	return rec, body
}

func TestHandlersAnswerFromTheRealBackend(t *testing.T) {
	n := realNode(t)
	srv, err := httpapi.New(n.API(), n.Token(), httpapi.WithRateLimits(map[httpapi.Class]int{}))
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()

	rec, body := do(t, h, n.Token(), call{method: http.MethodGet, path: "/api/v1/status", token: true})
	if rec.Code != http.StatusOK || body["node_id"] != n.ID() || body["model"] != "neuroshard-tiny" || body["status"] != "running" {
		t.Fatalf("status: %d %v", rec.Code, body)
	}
	rec, body = do(t, h, n.Token(), call{method: http.MethodGet, path: "/api/v1/layers", token: true})
	if rec.Code != http.StatusOK || body["my_layer_count"] != float64(4) || body["total_layers"] != float64(4) {
		t.Fatalf("layers: %d %v", rec.Code, body)
	}

	// Every refusal is the seed's error format, with the status and code the error calls for.
	for _, tc := range []struct {
		call   call
		status int
		code   string
		field  string
	}{
		{call{method: http.MethodGet, path: "/api/v1/status"}, http.StatusUnauthorized, apitypes.CodeUnauthorized, ""},
		{call{method: http.MethodGet, path: "/api/v1/dht/providers/99", token: true}, http.StatusNotFound, apitypes.CodeNotFound, ""},
		{call{method: http.MethodGet, path: "/api/v1/dht/peers/not-a-peer", token: true}, http.StatusBadRequest, apitypes.CodeInvalidRequest, ""},
		{call{method: http.MethodPatch, path: "/api/v1/config", body: `{"training":{"batch_size":0}}`, token: true}, http.StatusBadRequest, apitypes.CodeInvalidRequest, "training.batch_size"},
		{call{method: http.MethodPatch, path: "/api/v1/config", body: `{"training":{"batch_sise":8}}`, token: true}, http.StatusBadRequest, apitypes.CodeInvalidRequest, ""},
		{call{method: http.MethodPost, path: "/api/v1/inference", body: `{"prompt":"ROMEO:","temperature":3}`, token: true}, http.StatusBadRequest, apitypes.CodeInvalidRequest, "temperature"},
		{call{method: http.MethodPost, path: "/api/v1/inference", body: `{"max_tokens":4}`, token: true}, http.StatusBadRequest, apitypes.CodeInvalidRequest, "prompt"},
		{call{method: http.MethodPost, path: "/api/v1/wallet/send", body: `{"to":"0x12","amount":1}`, token: true}, http.StatusBadRequest, apitypes.CodeInvalidRequest, "to"},
		{call{method: http.MethodGet, path: "/api/tasks/task_missing", token: true}, http.StatusNotFound, apitypes.CodeNotFound, ""},
		{call{method: http.MethodGet, path: "/api/v1/nowhere", token: true}, http.StatusNotFound, apitypes.CodeNotFound, ""},
		{call{method: http.MethodPost, path: "/api/beta/signup", body: `{"email":"a@b.c"}`}, http.StatusNotFound, apitypes.CodeNotFound, ""},
	} {
		rec, body := do(t, h, n.Token(), tc.call)
		e, _ := body["error"].(map[string]any)
		if msg, ok := body["error"].(string); ok { // the task API's format (seed 002)
			e = map[string]any{"code": body["code"], "message": msg, "details": body["details"]}
		}
		if rec.Code != tc.status || e == nil || e["code"] != tc.code || e["message"] == "" {
			t.Errorf("%s %s: %d %v, want %d %s", tc.call.method, tc.call.path, rec.Code, body, tc.status, tc.code)
			continue
		}
		if d, _ := e["details"].(map[string]any); tc.field != "" && (d == nil || d["field"] != tc.field) {
			t.Errorf("%s %s: details %v, want field %s", tc.call.method, tc.call.path, e["details"], tc.field)
		}
	}
	// The beta sign-up says why a node has none, in seed 000's format.
	if rec, body := do(t, h, n.Token(), call{method: http.MethodPost, path: "/api/beta/signup", body: `{"email":"a@b.c"}`}); rec.Code != http.StatusNotFound ||
		body["success"] != false || !strings.Contains(fmt.Sprint(body["error"]), "website") {
		t.Fatalf("beta sign-up: %d %v", rec.Code, body)
	}
	// A refused patch changed nothing.
	rec, body = do(t, h, n.Token(), call{method: http.MethodGet, path: "/api/v1/config", token: true})
	if tr, _ := body["training"].(map[string]any); rec.Code != http.StatusOK || tr["batch_size"] != float64(8) {
		t.Fatalf("config after refused patches: %d %v", rec.Code, body)
	}

	// A generation through the handler, the whole model on this node.
	rec, body = do(t, h, n.Token(), call{method: http.MethodPost, path: "/api/v1/inference",
		body: `{"prompt":"ROMEO:","max_tokens":6,"temperature":0}`, token: true})
	if rec.Code != http.StatusOK || body["tokens_generated"] != float64(6) || body["finish_reason"] != "length" {
		t.Fatalf("inference: %d %v", rec.Code, body)
	}
}

// Failed attempts spend the caller's address's budget, never the token's: after 100 requests
// with a wrong token from this address (the last refused with 429), the owner's request still
// passes, and the owner's own budget is counted apart.
func TestWrongTokensNeverSpendTheOwnersBudget(t *testing.T) {
	n := realNode(t)
	srv, err := httpapi.New(n.API(), n.Token(), httpapi.WithRateLimits(map[httpapi.Class]int{httpapi.ClassStatus: 20}))
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	get := func(token string) int {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	codes := map[int]int{}
	for range 100 {
		codes[get("wrong")]++
	}
	if codes[http.StatusUnauthorized] < 20 || codes[http.StatusTooManyRequests] == 0 || codes[http.StatusOK] != 0 {
		t.Fatalf("wrong-token answers: %v (want 401s, then 429 once the address's budget is spent)", codes)
	}
	for i := range 20 {
		if code := get(n.Token()); code != http.StatusOK {
			t.Fatalf("the owner's request %d after 100 wrong tokens: %d", i+1, code)
		}
	}
	if code := get(n.Token()); code != http.StatusTooManyRequests {
		t.Fatalf("the owner's 21st request in the minute: %d, want 429 (its own budget of 20)", code)
	}
}

// A client that sends its body a byte at a time loses the connection once the body's time is
// up (the grace plus its length at the minimum rate), instead of holding it for minutes.
func TestSlowBodyIsCutOff(t *testing.T) {
	n := realNode(t)
	srv, err := httpapi.New(n.API(), n.Token(), httpapi.WithBodyGrace(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"prompt": "ROMEO:", "max_tokens": 4}`
	fmt.Fprintf(conn, "POST /api/v1/inference HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", n.Token(), len(body))
	start := time.Now()
	closed := make(chan struct{})
	var answer []byte
	go func() {
		answer, _ = io.ReadAll(conn) // whatever the server answers, then its close
		close(closed)
	}()
	for i := 0; i < len(body); i++ {
		if _, err := conn.Write([]byte{body[i]}); err != nil {
			break // cut off
		}
		select {
		case <-closed:
			i = len(body)
		case <-time.After(200 * time.Millisecond):
		}
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection of a byte-a-time body still open after 5 s")
	}
	if !strings.Contains(string(answer), "408") || !strings.Contains(string(answer), "did not arrive in time") {
		t.Fatalf("answer to a slow body: %q", answer)
	}
	if took := time.Since(start); took > 3*time.Second || took < 250*time.Millisecond {
		t.Fatalf("cut off after %v, want about the 0.3 s grace", took)
	}
}

// The dashboard's files are embedded and served under a policy that lets the page load only
// its own files and talk only to this node; the rounds it charts come from the API.
func TestDashboardIsServedWithItsPolicy(t *testing.T) {
	n := realNode(t)
	srv, err := httpapi.New(n.API(), n.Token(), httpapi.WithRateLimits(map[httpapi.Class]int{}))
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	for path, want := range map[string]string{"/": "text/html", "/dashboard/app.js": "javascript", "/dashboard/style.css": "text/css"} {
		rec := get(path)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Content-Type"), want) || rec.Body.Len() == 0 {
			t.Fatalf("%s: %d %q (%d bytes)", path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Fatalf("%s: policy %q", path, csp)
		}
	}
	if page := get("/").Body.String(); !strings.Contains(page, `src="/dashboard/app.js"`) || strings.Contains(page, "http") && strings.Contains(page, "://cdn") {
		t.Fatalf("index: %q", page)
	}
	if rec := get("/dashboard/nothing.js"); rec.Code != http.StatusNotFound {
		t.Fatalf("a missing file: %d", rec.Code)
	}
	// The rounds endpoint: a list (never null) and behind the token.
	rec, body := do(t, h, n.Token(), call{method: http.MethodGet, path: "/api/v1/training/rounds", token: true})
	if rs, ok := body["rounds"].([]any); rec.Code != http.StatusOK || !ok || len(rs) != 0 || body["model"] != "neuroshard-tiny" {
		t.Fatalf("rounds: %d %v", rec.Code, body)
	}
	if rec, _ := do(t, h, n.Token(), call{method: http.MethodGet, path: "/api/v1/training/rounds"}); rec.Code != http.StatusUnauthorized {
		t.Fatalf("rounds without the token: %d", rec.Code)
	}
}
