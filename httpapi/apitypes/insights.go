package apitypes

import "github.com/neuroshard/neuroshard/ledger/neuro"

// NodeView is a peer as this node knows it (seed 002's node). What no peer reports is present
// as null: region (nobody configures one), gpu_info (nodes run on CPU), owner and earnings
// (a peer's wallet and income are not tied to its peer ID anywhere this node can read).
type NodeView struct {
	ID           string   `json:"id"`
	Status       string   `json:"status"` // online (connected or heard from lately) or offline
	Self         bool     `json:"self"`
	Capabilities []string `json:"capabilities"` // text-generation (holds layers), training (gossips training reports)
	Layers       []int    `json:"layers"`
	Region       *string  `json:"region"`
	GPUInfo      *GPUInfo `json:"gpu_info"`
	Owner        *string  `json:"owner"`
	Earnings     *string  `json:"earnings"`
	// PerformanceScore is the node's measured decode throughput (its peer record) as a
	// percentage of the fastest measured node's this node knows: 100 for the fastest; null when
	// the node published no measurement.
	PerformanceScore *float64 `json:"performance_score"`
	// Seed 000's names: location and gpu (null, as region and gpu_info), tasks_processed (this
	// node's own completed tasks; null for peers, which do not report theirs).
	Location       *string `json:"location"`
	GPU            *string `json:"gpu"`
	TasksProcessed *int    `json:"tasks_processed"`
	// Seed 002's detail: this node's completed tasks and uptime ("15d 8h 32m"); null for peers.
	TotalTasksCompleted *int    `json:"total_tasks_completed"`
	Uptime              *string `json:"uptime"`
	DecodeTokensPerS    float64 `json:"decode_tokens_per_s,omitempty"`
	// Load is the share of this node's forward sessions that run on the peer (what routing
	// balances); a peer's own load is not gossiped.
	Load         float64  `json:"current_load"`
	LatencyMS    float64  `json:"latency_ms,omitempty"`
	LastSeen     string   `json:"last_seen,omitempty"`
	AgentVersion string   `json:"agent_version,omitempty"`
	Round        int64    `json:"training_round,omitempty"`
	Loss         float64  `json:"training_loss,omitempty"`
	Addrs        []string `json:"addrs,omitempty"`
}

// GPUInfo is seed 002's GPU description (no node reports one: it is always null).
type GPUInfo struct {
	Model             string `json:"model"`
	Memory            string `json:"memory"`
	ComputeCapability string `json:"compute_capability"`
}

// NetworkStatus is GET /api/network/status (seed 000).
type NetworkStatus struct {
	Success   bool           `json:"success"`
	Timestamp string         `json:"timestamp"`
	Network   map[string]any `json:"network"`
	Nodes     []NodeView     `json:"nodes"`
	// Stats: the compute time of this node's tasks; beta sign-ups and savings (a website's
	// and another provider's figures) are null.
	Stats map[string]any `json:"stats"`
}

// ServiceHealth is GET /health (seed 000).
type ServiceHealth struct {
	Status      string         `json:"status"` // OK or DEGRADED
	Service     string         `json:"service"`
	Version     string         `json:"version"`
	Environment string         `json:"environment"`
	Timestamp   string         `json:"timestamp"`
	Uptime      int64          `json:"uptime"`
	UptimeHuman string         `json:"uptime_human"`
	Memory      map[string]any `json:"memory"`
	Network     map[string]any `json:"network"`
}

// AnalyticsUsage is GET /api/v1/analytics/usage: this month's window, seed 002's current_month summary
// of it, and the limits (null: the node sets no monthly task count or budget).
type AnalyticsUsage struct {
	AnalyticsWindow
	CurrentMonth MonthUsage  `json:"current_month"`
	Limits       UsageLimits `json:"limits"`
}

// MonthUsage is seed 002's current_month.
type MonthUsage struct {
	TasksCompleted  int          `json:"tasks_completed"`
	TotalCost       neuro.Amount `json:"total_cost"`
	ComputeTime     string       `json:"compute_time"` // "2h 15m"
	TokensGenerated int          `json:"tokens_generated"`
}

// UsageLimits is seed 002's limits: null, since nothing limits a node's owner.
type UsageLimits struct {
	MonthlyTasks  *int          `json:"monthly_tasks"`
	MonthlyBudget *neuro.Amount `json:"monthly_budget"`
}

// AnalyticsWindow is what the node's own tasks and inference show over a time window.
type AnalyticsWindow struct {
	Since           string       `json:"since"`
	TasksCreated    int          `json:"tasks_created"`
	TasksCompleted  int          `json:"tasks_completed"`
	TasksFailed     int          `json:"tasks_failed"`
	TasksCancelled  int          `json:"tasks_cancelled"`
	SuccessRate     float64      `json:"success_rate"` // completed / finished, percent
	TokensGenerated int          `json:"tokens_generated"`
	TotalCost       neuro.Amount `json:"total_cost"`
	ComputeSeconds  float64      `json:"compute_seconds"`
	// Seed 002's names for the stats: tasks created in the window, compute in hours, and the
	// network's uptime (null: nobody measures a whole network's).
	TotalTasksToday   int      `json:"total_tasks_today"`
	TotalComputeHours float64  `json:"total_compute_hours"`
	NetworkUptime     *float64 `json:"network_uptime"`
	AvgResponseTime   float64  `json:"average_response_time"` // seconds, completed tasks
	P50ResponseTime   float64  `json:"p50_response_time"`
	P95ResponseTime   float64  `json:"p95_response_time"`
	TotalNodes        int      `json:"total_nodes"`
	ActiveNodes       int      `json:"active_nodes"`
	InferenceMetrics  Metrics  `json:"inference"`
}
