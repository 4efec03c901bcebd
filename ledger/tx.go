package ledger

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/neuroshard/neuroshard/ledger/neuro"
)

// Errors of transaction validation. Each names what is wrong; callers match them with
// errors.Is.
var (
	ErrMalformed    = errors.New("ledger: malformed transaction")
	ErrSignature    = errors.New("ledger: bad signature")
	ErrNonce        = errors.New("ledger: wrong nonce")
	ErrDuplicate    = errors.New("ledger: transaction already applied")
	ErrEquivocation = errors.New("ledger: another transaction already used this nonce")
	ErrInsufficient = errors.New("ledger: insufficient balance")
	ErrFee          = errors.New("ledger: fee too low")
	ErrStakeLocked  = errors.New("ledger: stake is still locked")
	ErrProof        = errors.New("ledger: bad proof")
	ErrClock        = errors.New("ledger: transaction time out of range")
)

// TxType is what a transaction does.
type TxType uint8

// Transaction types. A fee is not a transaction of its own: sends and payments carry one, and
// it is burned.
const (
	TxSend    TxType = 1 // available -> another account, fee burned
	TxStake   TxType = 2 // available -> staked for DurationDays
	TxUnstake TxType = 3 // staked -> pending for the cooldown, then available
	TxReward  TxType = 4 // mints the reward of a countersigned proof to its worker
	TxPayment TxType = 5 // an inference payment to a serving peer, fee burned
	TxBind    TxType = 6 // binds the sender's account to a peer key (both sign): its stake backs that peer
	TxSlash   TxType = 7 // burns part of the stake backing a peer that staked peers attest was convicted
)

func (t TxType) String() string {
	switch t {
	case TxSend:
		return "send"
	case TxStake:
		return "stake"
	case TxUnstake:
		return "unstake"
	case TxReward:
		return "reward"
	case TxPayment:
		return "inference_payment"
	case TxBind:
		return "bind"
	case TxSlash:
		return "slash"
	}
	return fmt.Sprintf("type%d", uint8(t))
}

// Limits of a transaction's fields.
const (
	MaxMemo    = 256
	MaxTxBytes = 2048 // a round reward with MaxCosigners countersignatures and the longest memo fits
)

// Tx is a signed ledger transaction. The sender is the holder of PubKey; Nonce counts the
// sender's transactions from 1, so each can be applied once and in order.
type Tx struct {
	Type   TxType
	PubKey ed25519.PublicKey // sender, 32 bytes
	Nonce  uint64
	Time   int64   // sender's clock, unix milliseconds
	To     Address // send and payment
	Amount neuro.Amount
	Fee    neuro.Amount
	Days   uint16 // stake: lock duration
	Memo   string
	Proof  *Proof // reward: the countersigned work
	// Peer is, on a bind, the raw ed25519 public key of the p2p identity the account backs,
	// and PeerSig that key's signature of BindMessage(sender's address): the peer agreed. On a
	// slash, Peer is the convicted peer's key.
	Peer, PeerSig []byte
	// Slash is a slash's evidence: the fraud proof and the peers that attest it convicts.
	Slash *SlashEvidence
	Sig   []byte // ed25519 over SigningBytes
}

// bindDomain separates a peer's consent to a binding from anything else its key signs.
const bindDomain = "neuroshard bind v1\x00"

// BindMessage is what a peer key signs to let account a back it.
func BindMessage(a Address) []byte { return append([]byte(bindDomain), a[:]...) }

// From is the sender's address.
func (t *Tx) From() Address { return AddressOf(t.PubKey) }

// Timestamp is the transaction's time.
func (t *Tx) Timestamp() time.Time { return time.UnixMilli(t.Time).UTC() }

// SigningBytes is the canonical encoding of everything but the signature.
func (t *Tx) SigningBytes() []byte {
	var e encoder
	e.bytes([]byte(txDomain))
	t.encodeBody(&e)
	return e.b
}

const txDomain = "neuroshard tx v1\x00"

// ID is the transaction's identity: a hash of its signed content. ed25519 signatures (as Go
// verifies them) are not malleable, so one signed content has one ID.
func (t *Tx) ID() string {
	sum := sha256.Sum256(t.SigningBytes())
	return "tx_" + hex.EncodeToString(sum[:16])
}

// Sign fills PubKey and Sig with the wallet's.
func (t *Tx) Sign(w *Wallet) {
	t.PubKey = w.PublicKey()
	t.Sig = w.Sign(t.SigningBytes())
}

// Check validates what can be validated without the ledger's state: field ranges, the
// signature and, for a reward, the proof's countersignature. Params bound the proof.
func (t *Tx) Check(p Params) error {
	if len(t.PubKey) != ed25519.PublicKeySize || len(t.Sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: key or signature length", ErrMalformed)
	}
	if t.Nonce == 0 || t.Time <= 0 || (t.Amount <= 0) != (t.Type == TxBind || t.Type == TxSlash) || t.Amount < 0 || t.Amount > neuro.MaxAmount || t.Fee < 0 || t.Fee > neuro.MaxAmount {
		return fmt.Errorf("%w: nonce, time, amount or fee out of range", ErrMalformed)
	}
	if len(t.Memo) > MaxMemo || !utf8.ValidString(t.Memo) {
		return fmt.Errorf("%w: memo over %d bytes or not UTF-8", ErrMalformed, MaxMemo)
	}
	from := t.From()
	switch t.Type {
	case TxSend, TxPayment:
		if t.To == from {
			return fmt.Errorf("%w: sending to oneself", ErrMalformed)
		}
		if t.Fee < p.Fee(t.Amount) {
			return fmt.Errorf("%w: %s < %s", ErrFee, t.Fee, p.Fee(t.Amount))
		}
	case TxStake:
		if t.Days == 0 || int(t.Days) > p.MaxStakeDays {
			return fmt.Errorf("%w: stake duration %d days (1..%d)", ErrMalformed, t.Days, p.MaxStakeDays)
		}
	case TxUnstake:
	case TxReward:
		if t.Proof == nil {
			return fmt.Errorf("%w: reward without a proof", ErrProof)
		}
		if err := t.Proof.Check(p); err != nil {
			return err
		}
		if t.Proof.Worker != from {
			return fmt.Errorf("%w: proof's worker %s is not the sender %s", ErrProof, t.Proof.Worker, from)
		}
		if want := t.Proof.Reward(p); t.Amount != want {
			return fmt.Errorf("%w: reward %s, the proof earns %s", ErrProof, t.Amount, want)
		}
		for _, s := range t.Proof.Signers() {
			if at := s.Time; at > t.Time+MaxClockSkew.Milliseconds() || at < t.Time-ClaimWindow.Milliseconds() {
				return fmt.Errorf("%w: a proof of %s claimed at %s (claims within %v of the countersignature)",
					ErrProof, time.UnixMilli(at).UTC().Format(time.RFC3339), time.UnixMilli(t.Time).UTC().Format(time.RFC3339), ClaimWindow)
			}
		}
	case TxBind:
		if len(t.Peer) != ed25519.PublicKeySize || len(t.PeerSig) != ed25519.SignatureSize {
			return fmt.Errorf("%w: bind without a peer key and its signature", ErrMalformed)
		}
		if !ed25519.Verify(t.Peer, BindMessage(from), t.PeerSig) {
			return fmt.Errorf("%w: the peer key did not sign the binding to %s", ErrSignature, from)
		}
	case TxSlash:
		if len(t.Peer) != ed25519.PublicKeySize || t.PeerSig != nil || t.Slash == nil {
			return fmt.Errorf("%w: slash without the convicted peer's key and evidence", ErrMalformed)
		}
		if err := t.Slash.check(t.Peer); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: unknown type %d", ErrMalformed, t.Type)
	}
	if t.Type != TxBind && t.Type != TxSlash && (t.Peer != nil || t.PeerSig != nil) {
		return fmt.Errorf("%w: peer key on a %s", ErrMalformed, t.Type)
	}
	if t.Type != TxSlash && t.Slash != nil {
		return fmt.Errorf("%w: slash evidence on a %s", ErrMalformed, t.Type)
	}
	if t.Type != TxSend && t.Type != TxPayment && (t.To != Address{} || t.Fee != 0) {
		return fmt.Errorf("%w: %s carries a recipient or fee", ErrMalformed, t.Type)
	}
	if t.Type != TxStake && t.Days != 0 {
		return fmt.Errorf("%w: duration on a %s", ErrMalformed, t.Type)
	}
	if t.Type != TxReward && t.Proof != nil {
		return fmt.Errorf("%w: proof on a %s", ErrMalformed, t.Type)
	}
	if !ed25519.Verify(t.PubKey, t.SigningBytes(), t.Sig) {
		return ErrSignature
	}
	return nil
}

// Debit is what the transaction takes from the sender's available balance.
func (t *Tx) Debit() neuro.Amount {
	switch t.Type {
	case TxSend, TxPayment:
		return t.Amount + t.Fee
	case TxStake:
		return t.Amount
	}
	return 0
}
