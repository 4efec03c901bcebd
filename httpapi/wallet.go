package httpapi

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// Wallet is the ledger part of the Backend (seed 001's Wallet and Proofs sections).
type Wallet interface {
	WalletBalance(ctx context.Context) (apitypes.WalletBalance, error)
	WalletSend(ctx context.Context, req apitypes.SendRequest) (apitypes.SendResult, error)
	WalletTransactions(ctx context.Context, limit, offset int) (apitypes.TransactionList, error)
	WalletStake(ctx context.Context, req apitypes.StakeRequest) (apitypes.StakeResult, error)
	WalletUnstake(ctx context.Context, req apitypes.UnstakeRequest) (apitypes.UnstakeResult, error)
	Proofs(ctx context.Context, limit, offset int) (apitypes.ProofList, error)
}

func (s *Server) walletRoutes(g *echo.Group, v1 *echo.Group, mw ...echo.MiddlewareFunc) {
	w := s.backend
	g.GET("/balance", func(c echo.Context) error {
		v, err := w.WalletBalance(c.Request().Context())
		return respond(c, v, err)
	})
	g.GET("/transactions", func(c echo.Context) error {
		limit, offset, err := pageOf(c, 10)
		if err != nil {
			return err
		}
		v, err := w.WalletTransactions(c.Request().Context(), limit, offset)
		return respond(c, v, err)
	})
	g.POST("/send", func(c echo.Context) error {
		var req apitypes.SendRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		v, err := w.WalletSend(c.Request().Context(), req)
		return respond(c, v, err)
	})
	g.POST("/stake", func(c echo.Context) error {
		var req apitypes.StakeRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		v, err := w.WalletStake(c.Request().Context(), req)
		return respond(c, v, err)
	})
	g.POST("/unstake", func(c echo.Context) error {
		var req apitypes.UnstakeRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		v, err := w.WalletUnstake(c.Request().Context(), req)
		return respond(c, v, err)
	})
	v1.GET("/proofs", func(c echo.Context) error {
		limit, offset, err := pageOf(c, 10)
		if err != nil {
			return err
		}
		v, err := w.Proofs(c.Request().Context(), limit, offset)
		return respond(c, v, err)
	}, mw...)
}

// respond writes a backend's result as 200 JSON, or its error.
func respond[T any](c echo.Context, v T, err error) error {
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}
