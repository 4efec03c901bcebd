package nodeapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/ledger/neuro"
	"github.com/neuroshard/neuroshard/p2p"
)

// The wallet endpoints (seed 001): the node's wallet is derived from its token; every
// change is a transaction signed by it, applied durably to this node's ledger before the
// answer, then gossiped to the network.

const dateLayout = "2006-01-02"

func date(ms int64) string { return time.UnixMilli(ms).UTC().Format(dateLayout) }

// WalletBalance implements httpapi.Wallet.
func (a *API) WalletBalance(ctx context.Context) (apitypes.WalletBalance, error) {
	acct, err := a.ledger.Account(a.wallet.Address())
	if err != nil {
		return apitypes.WalletBalance{}, ledgerError(err)
	}
	v := acct.View(time.Now())
	var pending neuro.Amount
	for _, u := range v.Pending {
		pending += u.Amount
	}
	out := apitypes.WalletBalance{Address: a.wallet.Address().String(),
		Balances: apitypes.Balances{Available: v.Available, Staked: v.Staked, Pending: pending, Total: v.Total()}}
	if v.Staked > 0 {
		s := stakeOf(v)
		out.Staking = &s
	}
	return out, nil
}

func stakeOf(a ledger.Account) apitypes.Stake {
	return apitypes.Stake{Amount: a.Staked, DurationDays: int(a.StakeDays), StartDate: date(a.StakeStart),
		UnlockDate: date(a.Unlock), Multiplier: ledger.Multiplier(int(a.StakeDays))}
}

// WalletSend implements httpapi.Wallet.
func (a *API) WalletSend(ctx context.Context, req apitypes.SendRequest) (apitypes.SendResult, error) {
	to, err := ledger.ParseAddress(req.To)
	if err != nil {
		return apitypes.SendResult{}, apitypes.InvalidRequest("to must be a wallet address: 0x and 40 hex digits", map[string]any{"field": "to", "to": req.To})
	}
	if err := checkAmount(req.Amount); err != nil {
		return apitypes.SendResult{}, err
	}
	if len(req.Memo) > ledger.MaxMemo {
		return apitypes.SendResult{}, apitypes.InvalidRequest(fmt.Sprintf("memo is longer than %d bytes", ledger.MaxMemo), map[string]any{"field": "memo"})
	}
	if to == a.wallet.Address() {
		return apitypes.SendResult{}, apitypes.InvalidRequest("to is this node's own wallet", map[string]any{"field": "to"})
	}
	fee := a.ledger.Params().Fee(req.Amount)
	tx, err := a.submit(ledger.Tx{Type: ledger.TxSend, To: to, Amount: req.Amount, Fee: fee, Memo: req.Memo})
	if err != nil {
		return apitypes.SendResult{}, err
	}
	return apitypes.SendResult{TransactionID: tx.ID(), From: tx.From().String(), To: to.String(), Amount: tx.Amount, Fee: tx.Fee,
		Memo: tx.Memo, Nonce: tx.Nonce, Status: "confirmed", Timestamp: tx.Timestamp().Format(time.RFC3339)}, nil
}

func checkAmount(a neuro.Amount) error {
	if a <= 0 {
		return apitypes.InvalidRequest("amount must be a positive number of NEURO (at most 6 decimal places)", map[string]any{"field": "amount"})
	}
	return nil
}

// WalletStake implements httpapi.Wallet.
func (a *API) WalletStake(ctx context.Context, req apitypes.StakeRequest) (apitypes.StakeResult, error) {
	var out apitypes.StakeResult
	if err := checkAmount(req.Amount); err != nil {
		return out, err
	}
	maxDays := a.ledger.Params().MaxStakeDays
	if req.DurationDays < 1 || req.DurationDays > maxDays {
		return out, apitypes.InvalidRequest(fmt.Sprintf("duration_days must be 1-%d", maxDays), map[string]any{"field": "duration_days", "duration_days": req.DurationDays})
	}
	tx, err := a.submit(ledger.Tx{Type: ledger.TxStake, Amount: req.Amount, Days: uint16(req.DurationDays)})
	if err != nil {
		return out, err
	}
	if out.PeerID, err = a.bindStake(); err != nil {
		logger().Warn("stake not bound to this node's peer ID", "err", err)
	}
	acct, err := a.ledger.Account(a.wallet.Address())
	if err != nil {
		return out, ledgerError(err)
	}
	v := acct.View(time.Now())
	out.Success, out.TransactionID, out.Stake = true, tx.ID(), stakeOf(v)
	out.NewBalance.Available, out.NewBalance.Staked = v.Available, v.Staked
	return out, nil
}

// WalletUnstake implements httpapi.Wallet.
func (a *API) WalletUnstake(ctx context.Context, req apitypes.UnstakeRequest) (apitypes.UnstakeResult, error) {
	var out apitypes.UnstakeResult
	if err := checkAmount(req.Amount); err != nil {
		return out, err
	}
	tx, err := a.submit(ledger.Tx{Type: ledger.TxUnstake, Amount: req.Amount})
	if err != nil {
		return out, err
	}
	days := a.ledger.Params().CooldownDays
	out.Success, out.TransactionID = true, tx.ID()
	out.Unstake.Amount, out.Unstake.CooldownDays = tx.Amount, days
	out.Unstake.AvailableDate = date(tx.Time + int64(days)*int64(24*time.Hour/time.Millisecond))
	return out, nil
}

// WalletTransactions implements httpapi.Wallet.
func (a *API) WalletTransactions(ctx context.Context, limit, offset int) (apitypes.TransactionList, error) {
	me := a.wallet.Address()
	entries, total, err := a.ledger.History(me, limit, offset)
	if err != nil {
		return apitypes.TransactionList{}, ledgerError(err)
	}
	out := apitypes.TransactionList{Transactions: make([]apitypes.Transaction, 0, len(entries)), Total: total, Limit: limit, Offset: offset}
	for _, e := range entries {
		out.Transactions = append(out.Transactions, historyEntry(me, e.Tx))
	}
	return out, nil
}

// historyEntry shows a transaction from the account's side: what left it is negative.
func historyEntry(me ledger.Address, tx *ledger.Tx) apitypes.Transaction {
	t := apitypes.Transaction{ID: tx.ID(), Type: tx.Type.String(), Amount: tx.Amount, Memo: tx.Memo, Nonce: tx.Nonce,
		Timestamp: tx.Timestamp().Format(time.RFC3339)}
	switch tx.Type {
	case ledger.TxSend, ledger.TxPayment:
		if tx.From() == me {
			t.Amount, t.Fee, t.To = -tx.Amount, tx.Fee, tx.To.String()
		} else {
			t.From = tx.From().String()
		}
	case ledger.TxReward:
		p := tx.Proof
		t.Details = map[string]any{"proof_id": p.ID(), "role": "worker", "kind": string(p.Kind), "layer": p.Layer,
			"units": p.Units, "consumer": ledger.AddressOf(p.Consumer).String()}
	case ledger.TxUnstake:
		t.Details = map[string]any{"pending": true}
	case ledger.TxBind:
		t.Details = map[string]any{"peer_id": p2p.PeerOfRawKey(tx.Peer).String()}
	}
	return t
}

// Proofs implements httpapi.Wallet: the proofs this node's wallet was rewarded for.
func (a *API) Proofs(ctx context.Context, limit, offset int) (apitypes.ProofList, error) {
	me := a.wallet.Address()
	entries, total, err := a.ledger.Rewards(me, limit, offset)
	if err != nil {
		return apitypes.ProofList{}, ledgerError(err)
	}
	acct, err := a.ledger.Account(me)
	if err != nil {
		return apitypes.ProofList{}, ledgerError(err)
	}
	out := apitypes.ProofList{Proofs: make([]apitypes.Proof, 0, len(entries)), Limit: limit, Offset: offset,
		Stats: apitypes.ProofStats{TotalSubmitted: total + int(a.lsync.RefusedClaims()), TotalVerified: total, TotalReward: acct.Rewarded}}
	for _, e := range entries {
		p := e.Tx.Proof
		out.Proofs = append(out.Proofs, apitypes.Proof{ID: p.ID(), Type: string(p.Kind), Layer: int(p.Layer), Units: int(p.Units),
			Consumer: ledger.AddressOf(p.Consumer).String(), Timestamp: time.UnixMilli(p.Time).UTC().Format(time.RFC3339),
			Verified: true, Reward: e.Tx.Amount})
	}
	return out, nil
}

// submit signs, applies and gossips a transaction of the node's wallet.
func (a *API) submit(tx ledger.Tx) (*ledger.Tx, error) {
	done, err := a.lsync.Submit(tx)
	if err != nil {
		return done, ledgerError(err)
	}
	return done, nil
}

// ledgerError turns a ledger refusal into the API's error.
func ledgerError(err error) error {
	var ie *ledger.InsufficientError
	switch {
	case errors.As(err, &ie):
		what := "Wallet balance"
		if ie.Staked {
			what = "Staked balance"
		}
		return apitypes.NewError(http.StatusPaymentRequired, apitypes.CodeInsufficientBalance,
			fmt.Sprintf("%s %s NEURO is less than required %s NEURO", what, ie.Available, ie.Required),
			map[string]any{"required": ie.Required, "available": ie.Available})
	case errors.Is(err, ledger.ErrStakeLocked), errors.Is(err, ledger.ErrMalformed), errors.Is(err, ledger.ErrFee),
		errors.Is(err, ledger.ErrProof), errors.Is(err, ledger.ErrClock):
		return apitypes.InvalidRequest(err.Error(), nil)
	case errors.Is(err, ledger.ErrClosed):
		return apitypes.NewError(http.StatusServiceUnavailable, apitypes.CodeNodeUnavailable, "the node is shutting down", nil)
	}
	return apitypes.NewError(http.StatusInternalServerError, apitypes.CodeInternal, err.Error(), nil)
}

// bindStake makes the wallet back this node's peer ID in the ledger, unless it does already:
// stake weighs a peer's training reports only once a bind that both keys signed ties the
// account to it. It returns the peer ID the stake backs.
func (a *API) bindStake() (string, error) {
	id := a.host.ID()
	raw, err := p2p.RawKey(id)
	if err != nil {
		return "", err
	}
	me := a.wallet.Address()
	bound, err := a.ledger.Bound(me)
	if err != nil {
		return "", err
	}
	if !bytes.Equal(bound, raw) {
		sig, err := a.host.Sign(ledger.BindMessage(me))
		if err != nil {
			return "", err
		}
		if _, err := a.submit(ledger.Tx{Type: ledger.TxBind, Peer: raw, PeerSig: sig}); err != nil {
			return "", err
		}
	}
	return id.String(), nil
}
