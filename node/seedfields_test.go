package node

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/neuroshard/neuroshard/layers"
)

// Every field of the seeds' example answers is in the node's answer to the same request:
// filled from real state, or null where the node cannot know it (testdata/seed_fields.txt
// lists them, per endpoint).
func TestSeedFieldsArePresent(t *testing.T) {
	t.Parallel()
	// A ledger network whose genesis funds the first node (wallet sends and stakes), with a
	// second node for the peers' views.
	cfgs := ledgerConfigs(t, 2, 1000)
	cfgs[0].Model, cfgs[0].Layers, cfgs[1].Model, cfgs[1].Layers = layers.DefaultModel, "0-3", layers.DefaultModel, "4-7"
	nodes := startLedgerNodes(t, cfgs)
	n := nodes[0]
	c := apiClient(n)
	ctx := context.Background()
	waitCoverage(t, n)
	taskID := completeTask(t, c, "ROMEO:", 4)
	requests := map[string]struct {
		method, path string
		body         any
	}{
		"001 GET /status": {"GET", "/api/v1/status", nil}, "001 GET /metrics": {"GET", "/api/v1/metrics", nil},
		"001 GET /health": {"GET", "/api/v1/health", nil}, "001 GET /wallet/balance": {"GET", "/api/v1/wallet/balance", nil},
		"001 GET /wallet/transactions": {"GET", "/api/v1/wallet/transactions", nil}, "001 GET /peers": {"GET", "/api/v1/peers", nil},
		"001 GET /layers": {"GET", "/api/v1/layers", nil}, "001 GET /network": {"GET", "/api/v1/network", nil},
		"001 GET /config": {"GET", "/api/v1/config", nil}, "001 GET /api/training/global": {"GET", "/api/training/global", nil},
		"001 GET /api/training/verify": {"GET", "/api/training/verify", nil}, "001 GET /proofs": {"GET", "/api/v1/proofs", nil},
		"002 GET /nodes": {"GET", "/api/v1/nodes", nil}, "002 GET /models": {"GET", "/api/v1/models", nil},
		"002 GET /tasks": {"GET", "/api/v1/tasks", nil}, "002 GET /analytics/stats": {"GET", "/api/v1/analytics/stats", nil},
		"002 GET /analytics/usage": {"GET", "/api/v1/analytics/usage", nil}, "000 GET /api/network/status": {"GET", "/api/network/status", nil},
		"000 GET /health":              {"GET", "/health", nil},
		"000 POST /api/tasks":          {"POST", "/api/tasks", map[string]any{"prompt": "ROMEO:", "max_tokens": 2}},
		"000 GET /api/tasks/{task_id}": {"GET", "/api/tasks/" + taskID, nil},
		"001 POST /inference":          {"POST", "/api/v1/inference", map[string]any{"prompt": "ROMEO:", "max_tokens": 3}},
		"001 PATCH /config":            {"PATCH", "/api/v1/config", map[string]any{"training": map[string]any{"batch_size": 8}}},
		"002 GET /nodes/{nodeId}":      {"GET", "/api/v1/nodes/" + nodes[1].ID(), nil},
		"001 POST /wallet/send":        {"POST", "/api/v1/wallet/send", map[string]any{"to": nodes[1].WalletAddress().String(), "amount": 12.5, "memo": "for the layers"}},
		"001 POST /wallet/stake":       {"POST", "/api/v1/wallet/stake", map[string]any{"amount": 100, "duration_days": 30}},
		"002 POST /models/generate/text": {"POST", "/api/v1/models/generate/text",
			map[string]any{"model": layers.DefaultModel, "prompt": "ROMEO:", "parameters": map[string]any{"max_tokens": 3}}},
	}
	f, err := os.Open("testdata/seed_fields.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checked := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		f := strings.SplitN(line, " ", 4)
		key := strings.Join(f[:3], " ")
		req, ok := requests[key]
		if !ok {
			t.Fatalf("no request for %s", key)
		}
		var paths []string
		if err := json.Unmarshal([]byte(f[3]), &paths); err != nil {
			t.Fatal(err)
		}
		var answer any
		if err := c.Do(ctx, req.method, req.path, req.body, &answer); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		for _, p := range paths {
			if !hasPath(answer, strings.Split(strings.ReplaceAll(p, "[]", ".[]"), ".")) {
				raw, _ := json.Marshal(answer)
				t.Errorf("%s: no %s in %s", key, p, raw)
			}
		}
		checked++
	}
	if checked != len(requests) {
		t.Fatalf("checked %d endpoints of %d", checked, len(requests))
	}
}

// hasPath tells whether v holds the key path; an empty array or a null on the way holds
// every path below it (the seed shows what its elements or value hold when there is one).
func hasPath(v any, path []string) bool {
	if len(path) == 0 || v == nil {
		return true
	}
	if path[0] == "[]" {
		a, ok := v.([]any)
		return ok && (len(a) == 0 || hasPath(a[0], path[1:]))
	}
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	x, ok := m[path[0]]
	return ok && hasPath(x, path[1:])
}
