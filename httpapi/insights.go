package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/ledger"
)

// Insights is the part of the Backend behind the network views (seeds 000 and 002) and the
// analytics: what this node knows from the DHT, gossip, its connections and its own tasks.
type Insights interface {
	Nodes(ctx context.Context) []NodeView
	NetworkStatus(ctx context.Context) NetworkStatus
	ServiceHealth(ctx context.Context) ServiceHealth
	Analytics(ctx context.Context, since time.Time) (AnalyticsWindow, error)
}

// NodeView is a peer as this node knows it (seed 002's node, without what no peer reports:
// GPU, region, owner, earnings).
type NodeView struct {
	ID           string   `json:"id"`
	Status       string   `json:"status"` // online (connected or heard from lately) or offline
	Self         bool     `json:"self"`
	Capabilities []string `json:"capabilities"` // text-generation (holds layers), training (gossips training reports)
	Layers       []int    `json:"layers"`
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

// NetworkStatus is GET /api/network/status (seed 000).
type NetworkStatus struct {
	Success   bool           `json:"success"`
	Timestamp string         `json:"timestamp"`
	Network   map[string]any `json:"network"`
	Nodes     []NodeView     `json:"nodes"`
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

// AnalyticsWindow is what the node's own tasks and inference show over a time window.
type AnalyticsWindow struct {
	Since            string        `json:"since"`
	TasksCreated     int           `json:"tasks_created"`
	TasksCompleted   int           `json:"tasks_completed"`
	TasksFailed      int           `json:"tasks_failed"`
	TasksCancelled   int           `json:"tasks_cancelled"`
	SuccessRate      float64       `json:"success_rate"` // completed / finished, percent
	TokensGenerated  int           `json:"tokens_generated"`
	TotalCost        ledger.Amount `json:"total_cost"`
	ComputeSeconds   float64       `json:"compute_seconds"`
	AvgResponseTime  float64       `json:"average_response_time"` // seconds, completed tasks
	P50ResponseTime  float64       `json:"p50_response_time"`
	P95ResponseTime  float64       `json:"p95_response_time"`
	TotalNodes       int           `json:"total_nodes"`
	ActiveNodes      int           `json:"active_nodes"`
	InferenceMetrics Metrics       `json:"inference"`
}

// seed002 wraps errors as seed 002 does: {"success": false, "error": {code, message, type,
// details}}.
func seed002(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if err == nil || c.Response().Committed {
			return err
		}
		e := toAPIError(err)
		typ := "InvalidRequestError"
		switch {
		case e.Status == http.StatusUnauthorized:
			typ = "AuthenticationError"
		case e.Status == http.StatusNotFound:
			typ = "NotFoundError"
		case e.Status == http.StatusTooManyRequests:
			typ = "RateLimitError"
		case e.Status >= 500:
			typ = "ServerError"
		}
		return c.JSON(e.Status, map[string]any{"success": false, "error": map[string]any{
			"code": e.Code, "message": e.Message, "type": typ, "details": e.Details}})
	}
}

func ok002(c echo.Context, data any) error {
	return c.JSON(http.StatusOK, map[string]any{"success": true, "data": data})
}

var timeframes = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}

func (s *Server) insightRoutes(v1 *echo.Group, read, wallet, auth echo.MiddlewareFunc) {
	b := s.backend
	s.e.GET("/health", func(c echo.Context) error { // public, like /api/v1/health
		h := b.ServiceHealth(c.Request().Context())
		status := http.StatusOK
		if h.Status != "OK" {
			status = http.StatusServiceUnavailable
		}
		return c.JSON(status, h)
	})
	s.e.GET("/api/network/status", func(c echo.Context) error {
		return c.JSON(http.StatusOK, b.NetworkStatus(c.Request().Context()))
	}, taskError, read, auth)

	nodes := v1.Group("/nodes", seed002, read, auth)
	nodes.GET("", func(c echo.Context) error {
		limit, offset, err := pageOf(c, 50)
		if err != nil {
			return err
		}
		status, region := c.QueryParam("status"), c.QueryParam("region")
		switch status {
		case "", "online", "offline", "busy":
		default:
			return InvalidRequest("status must be online, offline or busy", map[string]any{"field": "status"})
		}
		var match []NodeView
		for _, n := range b.Nodes(c.Request().Context()) {
			if status == "busy" && n.Load < 0.5 || status != "" && status != "busy" && n.Status != status {
				continue
			}
			if region != "" { // no peer reports a region: a region filter matches none
				continue
			}
			match = append(match, n)
		}
		page := []NodeView{}
		if offset < len(match) {
			page = match[offset:min(len(match), offset+limit)]
		}
		return ok002(c, map[string]any{"nodes": page, "total": len(match), "limit": limit, "offset": offset})
	})
	nodes.GET("/:id", func(c echo.Context) error {
		for _, n := range b.Nodes(c.Request().Context()) {
			if n.ID == c.Param("id") {
				return ok002(c, n)
			}
		}
		return NotFound("this node knows no peer "+c.Param("id"), map[string]any{"id": c.Param("id")})
	})

	an := v1.Group("/analytics", seed002, read, auth)
	window := func(c echo.Context, since time.Time) error {
		w, err := b.Analytics(c.Request().Context(), since)
		if err != nil {
			return err
		}
		return ok002(c, w)
	}
	an.GET("/stats", func(c echo.Context) error {
		y, m, d := time.Now().UTC().Date()
		return window(c, time.Date(y, m, d, 0, 0, 0, 0, time.UTC)) // today
	})
	an.GET("/performance", func(c echo.Context) error {
		tf := c.QueryParam("timeframe")
		if tf == "" {
			tf = "24h"
		}
		d, ok := timeframes[tf]
		if !ok {
			return InvalidRequest("timeframe must be 1h, 24h, 7d or 30d", map[string]any{"field": "timeframe"})
		}
		return window(c, time.Now().Add(-d))
	})
	an.GET("/usage", func(c echo.Context) error {
		y, m, _ := time.Now().UTC().Date()
		return window(c, time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)) // this month
	})

	bill := v1.Group("/billing", seed002, wallet, auth)
	bill.GET("/balance", func(c echo.Context) error {
		w, err := b.WalletBalance(c.Request().Context())
		if err != nil {
			return err
		}
		return ok002(c, map[string]any{"balance": w.Balances.Available, "currency": "NEURO", "address": w.Address, "balances": w.Balances})
	})
	bill.GET("/history", func(c echo.Context) error {
		limit, offset, err := pageOf(c, 20)
		if err != nil {
			return err
		}
		h, err := b.WalletTransactions(c.Request().Context(), limit, offset)
		if err != nil {
			return err
		}
		return ok002(c, h)
	})
	bill.POST("/credits", func(c echo.Context) error {
		w, err := b.WalletBalance(c.Request().Context())
		if err != nil {
			return err
		}
		return NewError(http.StatusBadRequest, CodeInvalidRequest,
			"a node sells no credits: credit is NEURO in this node's wallet. Send NEURO to "+w.Address+" (neuroshard wallet send --to "+w.Address+" from another wallet), or earn it by serving layers and training",
			map[string]any{"wallet_address": w.Address, "currency": "NEURO"})
	})
}

// pageOf reads limit (1-100, default def) and offset query parameters.
func pageOf(c echo.Context, def int) (limit, offset int, err error) {
	limit = def
	for name, dst := range map[string]*int{"limit": &limit, "offset": &offset} {
		if q := c.QueryParam(name); q != "" {
			v, perr := strconv.Atoi(q)
			if perr != nil || v < 0 || name == "limit" && (v < 1 || v > 100) {
				return 0, 0, InvalidRequest(name+" must be an integer (limit 1-100, offset 0 or more)", map[string]any{"field": name, name: q})
			}
			*dst = v
		}
	}
	return limit, offset, nil
}
