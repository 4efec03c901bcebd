package node

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

func TestNetworkViewsAnalyticsAndBilling(t *testing.T) {
	t.Parallel()
	nodes := startNetwork(t, "0-3", "4-7")
	a, b := nodes[0], nodes[1]
	c := apiClient(a)
	ctx := context.Background()
	var list struct {
		Success bool `json:"success"`
		Data    struct {
			Nodes []apitypes.NodeView `json:"nodes"`
			Total int                 `json:"total"`
		} `json:"data"`
	}
	eventually(t, 10*time.Second, "both nodes online with their layers", func() bool {
		if c.Do(ctx, http.MethodGet, "/api/v1/nodes?status=online", nil, &list) != nil || list.Data.Total != 2 {
			return false
		}
		for _, v := range list.Data.Nodes {
			if len(v.Layers) != 4 || !strings.Contains(strings.Join(v.Capabilities, ","), "text-generation") {
				return false
			}
		}
		return true
	})
	for _, q := range []string{"status=offline", "region=us-west-1"} {
		if err := c.Do(ctx, http.MethodGet, "/api/v1/nodes?"+q, nil, &list); err != nil || list.Data.Total != 0 {
			t.Fatalf("nodes?%s: %+v %v", q, list, err)
		}
	}
	var one struct {
		Data apitypes.NodeView `json:"data"`
	}
	if err := c.Do(ctx, http.MethodGet, "/api/v1/nodes/"+b.ID(), nil, &one); err != nil || one.Data.Layers[0] != 4 || one.Data.Self || len(one.Data.Addrs) == 0 {
		t.Fatalf("node detail %+v %v", one, err)
	}
	// What no peer reports is present as null, never invented; nothing was measured here.
	var raw struct {
		Data map[string]any `json:"data"`
	}
	if err := c.Do(ctx, http.MethodGet, "/api/v1/nodes/"+b.ID(), nil, &raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"region", "gpu_info", "owner", "earnings", "performance_score"} {
		if v, present := raw.Data[f]; !present || v != nil {
			t.Fatalf("node field %s: %v (present %v), want null", f, v, present)
		}
	}
	if err := c.Do(ctx, http.MethodGet, "/api/v1/nodes/12D3KooWnope", nil, nil); !client.IsCode(err, apitypes.CodeNotFound) {
		t.Fatalf("unknown node: %v", err)
	}

	resp, err := http.Get(a.APIURL() + "/health") // public
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/health: %v %v", resp, err)
	}
	resp.Body.Close()
	var ns apitypes.NetworkStatus
	if err := c.Do(ctx, http.MethodGet, "/api/network/status", nil, &ns); err != nil || !ns.Success || ns.Network["nodes_online"] != float64(2) {
		t.Fatalf("network status %+v %v", ns.Network, err)
	}
	// Seed 000's figures nobody measures are present as null.
	for _, f := range []string{"cost_savings_vs_openai", "uptime"} {
		if v, ok := ns.Network[f]; !ok || v != nil {
			t.Fatalf("network.%s: %v (present %v)", f, v, ok)
		}
	}
	if v, ok := ns.Stats["total_savings"]; !ok || v != nil || ns.Stats["total_compute_time"] == nil {
		t.Fatalf("stats: %v", ns.Stats)
	}

	completeTask(t, c, "ROMEO:", 4)
	var stats struct {
		Data apitypes.AnalyticsWindow `json:"data"`
	}
	for _, p := range []string{"/api/v1/analytics/stats", "/api/v1/analytics/performance?timeframe=1h", "/api/v1/analytics/usage"} {
		if err := c.Do(ctx, http.MethodGet, p, nil, &stats); err != nil || stats.Data.TasksCompleted != 1 || stats.Data.TotalNodes != 2 ||
			stats.Data.SuccessRate != 100 || stats.Data.AvgResponseTime <= 0 {
			t.Fatalf("%s: %+v %v", p, stats, err)
		}
	}
	// The seed's current_month summary, and limits present as null (nothing limits the owner).
	var usage struct {
		Data map[string]any `json:"data"`
	}
	if err := c.Do(ctx, http.MethodGet, "/api/v1/analytics/usage", nil, &usage); err != nil {
		t.Fatal(err)
	}
	month, _ := usage.Data["current_month"].(map[string]any)
	limits, hasLimits := usage.Data["limits"].(map[string]any)
	if month["tasks_completed"] != float64(1) || month["tokens_generated"] != usage.Data["tokens_generated"] || month["compute_time"] != "0h 0m" ||
		!hasLimits || limits["monthly_tasks"] != nil || limits["monthly_budget"] != nil {
		t.Fatalf("usage: %v", usage.Data)
	}
	if err := c.Do(ctx, http.MethodGet, "/api/v1/analytics/performance?timeframe=1y", nil, nil); !client.IsCode(err, apitypes.CodeInvalidRequest) {
		t.Fatalf("bad timeframe: %v", err)
	}

	var bal struct {
		Data struct {
			Balance  float64 `json:"balance"`
			Currency string  `json:"currency"`
			Address  string  `json:"address"`
		} `json:"data"`
	}
	if err := c.Do(ctx, http.MethodGet, "/api/v1/billing/balance", nil, &bal); err != nil || bal.Data.Currency != "NEURO" || bal.Data.Address != a.WalletAddress().String() {
		t.Fatalf("billing balance %+v %v", bal, err)
	}
	if err := c.Do(ctx, http.MethodGet, "/api/v1/billing/history", nil, nil); err != nil {
		t.Fatal(err)
	}
	err = c.Do(ctx, http.MethodPost, "/api/v1/billing/credits", map[string]any{"amount": 50, "payment_method": "card_123"}, nil)
	if !client.IsCode(err, apitypes.CodeInvalidRequest) || !strings.Contains(err.Error(), a.WalletAddress().String()) {
		t.Fatalf("credits: %v", err)
	}
}
