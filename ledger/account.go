package ledger

import (
	"fmt"
	"time"

	"github.com/neuroshard/neuroshard/ledger/neuro"
)

const dayMillis = int64(24 * time.Hour / time.Millisecond)

// MaxPendingUnstakes bounds how many unstakes can wait out their cooldown at once.
const MaxPendingUnstakes = 32

// Account is the state of one address.
type Account struct {
	Nonce      uint64 // transactions applied from this account
	LastTime   int64  // time of its latest transaction (unix ms): its clock may not go back
	Available  neuro.Amount
	Staked     neuro.Amount
	StakeStart int64  // unix ms of the first stake of the current lock
	StakeDays  uint16 // duration of the latest stake
	Unlock     int64  // unix ms when the stake may be unstaked
	Pending    []Unbond
	Rewards    uint64       // proofs rewarded
	Rewarded   neuro.Amount // NEURO minted to it by rewards
}

// Unbond is unstaked NEURO waiting out its cooldown.
type Unbond struct {
	Amount neuro.Amount
	At     int64 // unix ms when it becomes available
}

// Total is everything the account holds.
func (a *Account) Total() neuro.Amount {
	t := a.Available + a.Staked
	for _, u := range a.Pending {
		t += u.Amount
	}
	return t
}

// mature moves the unbonds whose cooldown ended by now into the available balance.
func (a *Account) mature(now int64) {
	keep := a.Pending[:0]
	for _, u := range a.Pending {
		if u.At <= now {
			a.Available += u.Amount
		} else {
			keep = append(keep, u)
		}
	}
	a.Pending = keep
	if len(a.Pending) == 0 {
		a.Pending = nil
	}
}

// View is the account as it stands at now: matured unbonds counted as available.
func (a Account) View(now time.Time) Account {
	a.Pending = append([]Unbond(nil), a.Pending...)
	a.mature(now.UnixMilli())
	return a
}

// effect is what applying a transaction does to the supply.
type effect struct{ minted, burned neuro.Amount }

// applyTx applies tx to its sender's account (and to the recipient's, for a send or payment).
// It changes nothing and returns an error if the transaction is not valid in this state.
// Check(tx) must have passed.
func applyTx(p Params, tx *Tx, from, to *Account) (effect, error) {
	if tx.Nonce != from.Nonce+1 {
		return effect{}, fmt.Errorf("%w: %d, the account expects %d", ErrNonce, tx.Nonce, from.Nonce+1)
	}
	if tx.Time < from.LastTime {
		return effect{}, fmt.Errorf("%w: %s is before the account's previous transaction", ErrClock, tx.Timestamp().Format(time.RFC3339))
	}
	f := *from
	f.Pending = append([]Unbond(nil), from.Pending...)
	f.mature(tx.Time)
	var eff effect
	switch tx.Type {
	case TxSend, TxPayment:
		if f.Available < tx.Debit() {
			return effect{}, &InsufficientError{Required: tx.Debit(), Available: f.Available}
		}
		if to.Available+tx.Amount > neuro.MaxAmount {
			return effect{}, fmt.Errorf("%w: the recipient's balance would pass %s", ErrMalformed, neuro.MaxAmount)
		}
		f.Available -= tx.Debit()
		to.Available += tx.Amount
		eff.burned = tx.Fee
	case TxStake:
		if f.Available < tx.Amount {
			return effect{}, &InsufficientError{Required: tx.Amount, Available: f.Available}
		}
		if f.Staked == 0 {
			f.StakeStart = tx.Time
		}
		f.Available -= tx.Amount
		f.Staked += tx.Amount
		f.StakeDays = tx.Days
		f.Unlock = max(f.Unlock, tx.Time+int64(tx.Days)*dayMillis)
	case TxUnstake:
		if f.Staked < tx.Amount {
			return effect{}, &InsufficientError{Required: tx.Amount, Available: f.Staked, Staked: true}
		}
		if tx.Time < f.Unlock {
			return effect{}, fmt.Errorf("%w until %s", ErrStakeLocked, time.UnixMilli(f.Unlock).UTC().Format(time.RFC3339))
		}
		if len(f.Pending) >= MaxPendingUnstakes {
			return effect{}, fmt.Errorf("%w: %d unstakes already wait out their cooldown", ErrMalformed, len(f.Pending))
		}
		f.Staked -= tx.Amount
		f.Pending = append(f.Pending, Unbond{Amount: tx.Amount, At: tx.Time + int64(p.CooldownDays)*dayMillis})
		if f.Staked == 0 {
			f.StakeStart, f.StakeDays, f.Unlock = 0, 0, 0
		}
	case TxReward:
		if f.Available+tx.Amount > neuro.MaxAmount {
			return effect{}, fmt.Errorf("%w: the balance would pass %s", ErrMalformed, neuro.MaxAmount)
		}
		f.Available += tx.Amount
		f.Rewards++
		f.Rewarded += tx.Amount
		eff.minted = tx.Amount
	case TxBind, TxSlash:
		// Their effects live in other keys and accounts (applyChecked); the sender's account
		// takes the nonce.
	default:
		return effect{}, fmt.Errorf("%w: unknown type %d", ErrMalformed, tx.Type)
	}
	f.Nonce, f.LastTime = tx.Nonce, tx.Time
	*from = f
	return eff, nil
}

// InsufficientError tells how much was required and how much was available; it matches
// ErrInsufficient.
type InsufficientError struct {
	Required, Available neuro.Amount
	Staked              bool // the shortfall is in the staked balance (an unstake)
}

func (e *InsufficientError) Error() string {
	what := "available"
	if e.Staked {
		what = "staked"
	}
	return fmt.Sprintf("ledger: insufficient balance: %s NEURO required, %s NEURO %s", e.Required, e.Available, what)
}

// Is makes errors.Is(err, ErrInsufficient) true.
func (e *InsufficientError) Is(target error) bool { return target == ErrInsufficient }

func (a *Account) encode() []byte {
	var e encoder
	e.u64(a.Nonce)
	e.u64(uint64(a.LastTime))
	e.u64(uint64(a.Available))
	e.u64(uint64(a.Staked))
	e.u64(uint64(a.StakeStart))
	e.u16(a.StakeDays)
	e.u64(uint64(a.Unlock))
	e.u64(a.Rewards)
	e.u64(uint64(a.Rewarded))
	e.u8(byte(len(a.Pending)))
	for _, u := range a.Pending {
		e.u64(uint64(u.Amount))
		e.u64(uint64(u.At))
	}
	return e.b
}

func decodeAccount(b []byte) (Account, error) {
	d := decoder{b: b}
	a := Account{Nonce: d.u64(), LastTime: int64(d.u64()), Available: neuro.Amount(d.u64()), Staked: neuro.Amount(d.u64()),
		StakeStart: int64(d.u64()), StakeDays: d.u16(), Unlock: int64(d.u64()), Rewards: d.u64(), Rewarded: neuro.Amount(d.u64())}
	n := int(d.u8())
	for i := 0; i < n && d.err == nil; i++ {
		a.Pending = append(a.Pending, Unbond{Amount: neuro.Amount(d.u64()), At: int64(d.u64())})
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: trailing account bytes", ErrMalformed)
	}
	return a, d.err
}
