package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// Insights is the part of the Backend behind the network views (seeds 000 and 002) and the
// analytics: what this node knows from the DHT, gossip, its connections and its own tasks.
type Insights interface {
	Nodes(ctx context.Context) []apitypes.NodeView
	NetworkStatus(ctx context.Context) apitypes.NetworkStatus
	ServiceHealth(ctx context.Context) apitypes.ServiceHealth
	Analytics(ctx context.Context, since time.Time) (apitypes.AnalyticsWindow, error)
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
			return apitypes.InvalidRequest("status must be online, offline or busy", map[string]any{"field": "status"})
		}
		var match []apitypes.NodeView
		for _, n := range b.Nodes(c.Request().Context()) {
			if status == "busy" && n.Load < 0.5 || status != "" && status != "busy" && n.Status != status {
				continue
			}
			if region != "" { // no peer reports a region: a region filter matches none
				continue
			}
			match = append(match, n)
		}
		page := []apitypes.NodeView{}
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
		return apitypes.NotFound("this node knows no peer "+c.Param("id"), map[string]any{"id": c.Param("id")})
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
			return apitypes.InvalidRequest("timeframe must be 1h, 24h, 7d or 30d", map[string]any{"field": "timeframe"})
		}
		return window(c, time.Now().Add(-d))
	})
	an.GET("/usage", func(c echo.Context) error {
		y, m, _ := time.Now().UTC().Date()
		w, err := b.Analytics(c.Request().Context(), time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)) // this month
		if err != nil {
			return err
		}
		compute := time.Duration(w.ComputeSeconds * float64(time.Second))
		return ok002(c, apitypes.AnalyticsUsage{AnalyticsWindow: w, CurrentMonth: apitypes.MonthUsage{TasksCompleted: w.TasksCompleted,
			TotalCost: w.TotalCost, ComputeTime: fmt.Sprintf("%dh %dm", int(compute.Hours()), int(compute.Minutes())%60),
			TokensGenerated: w.TokensGenerated}})
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
		return apitypes.NewError(http.StatusBadRequest, apitypes.CodeInvalidRequest,
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
				return 0, 0, apitypes.InvalidRequest(name+" must be an integer (limit 1-100, offset 0 or more)", map[string]any{"field": name, name: q})
			}
			*dst = v
		}
	}
	return limit, offset, nil
}
