package httpapi

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/ledger"
)

// Wallet is the ledger part of the Backend (seed 001's Wallet and Proofs sections).
type Wallet interface {
	WalletBalance(ctx context.Context) (WalletBalance, error)
	WalletSend(ctx context.Context, req SendRequest) (SendResult, error)
	WalletTransactions(ctx context.Context, limit, offset int) (TransactionList, error)
	WalletStake(ctx context.Context, req StakeRequest) (StakeResult, error)
	WalletUnstake(ctx context.Context, req UnstakeRequest) (UnstakeResult, error)
	Proofs(ctx context.Context, limit, offset int) (ProofList, error)
}

// Balances are an account's NEURO by state.
type Balances struct {
	Available ledger.Amount `json:"available"`
	Staked    ledger.Amount `json:"staked"`
	Pending   ledger.Amount `json:"pending"` // unstaked, waiting out the cooldown
	Total     ledger.Amount `json:"total"`
}

// Stake describes an account's current stake.
type Stake struct {
	Amount       ledger.Amount `json:"amount"`
	DurationDays int           `json:"duration_days"`
	StartDate    string        `json:"start_date"`
	UnlockDate   string        `json:"unlock_date"`
	Multiplier   float64       `json:"multiplier"`
}

// WalletBalance is GET /wallet/balance.
type WalletBalance struct {
	Address  string   `json:"address"`
	Balances Balances `json:"balances"`
	Staking  *Stake   `json:"staking"` // null when nothing is staked
}

// SendRequest is POST /wallet/send.
type SendRequest struct {
	To     string        `json:"to"`
	Amount ledger.Amount `json:"amount"`
	Memo   string        `json:"memo"`
}

// SendResult answers a send.
type SendResult struct {
	TransactionID string        `json:"transaction_id"`
	From          string        `json:"from"`
	To            string        `json:"to"`
	Amount        ledger.Amount `json:"amount"`
	Fee           ledger.Amount `json:"fee"`
	Memo          string        `json:"memo"`
	Nonce         uint64        `json:"nonce"`
	Status        string        `json:"status"` // "confirmed": applied durably to this node's ledger
	Timestamp     string        `json:"timestamp"`
}

// Transaction is one entry of an account's history; Amount is signed from the account's view.
type Transaction struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	Amount    ledger.Amount  `json:"amount"`
	Fee       ledger.Amount  `json:"fee,omitempty"`
	From      string         `json:"from,omitempty"`
	To        string         `json:"to,omitempty"`
	Memo      string         `json:"memo,omitempty"`
	Nonce     uint64         `json:"nonce"`
	Timestamp string         `json:"timestamp"`
	Details   map[string]any `json:"details,omitempty"`
}

// TransactionList is GET /wallet/transactions.
type TransactionList struct {
	Transactions []Transaction `json:"transactions"`
	Total        int           `json:"total"`
	Limit        int           `json:"limit"`
	Offset       int           `json:"offset"`
}

// StakeRequest is POST /wallet/stake.
type StakeRequest struct {
	Amount       ledger.Amount `json:"amount"`
	DurationDays int           `json:"duration_days"`
}

// StakeResult answers a stake.
type StakeResult struct {
	Success       bool   `json:"success"`
	TransactionID string `json:"transaction_id"`
	Stake         Stake  `json:"stake"`
	NewBalance    struct {
		Available ledger.Amount `json:"available"`
		Staked    ledger.Amount `json:"staked"`
	} `json:"new_balance"`
}

// UnstakeRequest is POST /wallet/unstake.
type UnstakeRequest struct {
	Amount ledger.Amount `json:"amount"`
}

// UnstakeResult answers an unstake.
type UnstakeResult struct {
	Success       bool   `json:"success"`
	TransactionID string `json:"transaction_id"`
	Unstake       struct {
		Amount        ledger.Amount `json:"amount"`
		CooldownDays  int           `json:"cooldown_days"`
		AvailableDate string        `json:"available_date"`
	} `json:"unstake"`
}

// Proof is one proof of work this node's wallet was rewarded for.
type Proof struct {
	ID        string        `json:"id"`
	Type      string        `json:"type"`
	Layer     int           `json:"layer"`
	Units     int           `json:"units"`
	Consumer  string        `json:"consumer"`
	Timestamp string        `json:"timestamp"`
	Verified  bool          `json:"verified"`
	Reward    ledger.Amount `json:"reward"`
}

// ProofStats sums the node's proofs.
type ProofStats struct {
	TotalSubmitted int           `json:"total_submitted"`
	TotalVerified  int           `json:"total_verified"`
	TotalReward    ledger.Amount `json:"total_reward"`
}

// ProofList is GET /proofs.
type ProofList struct {
	Proofs []Proof    `json:"proofs"`
	Stats  ProofStats `json:"stats"`
	Limit  int        `json:"limit"`
	Offset int        `json:"offset"`
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
		var req SendRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		v, err := w.WalletSend(c.Request().Context(), req)
		return respond(c, v, err)
	})
	g.POST("/stake", func(c echo.Context) error {
		var req StakeRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		v, err := w.WalletStake(c.Request().Context(), req)
		return respond(c, v, err)
	})
	g.POST("/unstake", func(c echo.Context) error {
		var req UnstakeRequest
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
