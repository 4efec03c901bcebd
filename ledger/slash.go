package ledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/neuroshard/neuroshard/ledger/neuro"
)

// Slashing. A peer whose signed answers a fraud proof shows wrong loses part of the stake that
// backs it (the account bound to it, Backing). The ledger cannot recompute a model: it takes
// the word of peers that did, each backed by stake of its own. Nodes that convict the peer (by
// their own audit, or by checking a gossiped fraud proof) sign an attestation of (accused,
// proof); a slash transaction carries the proof's ID and the attestations. It is applied
// whatever it finds (its nonce is spent on every ledger, so accounts never drift apart over
// it), and it burns SlashShare of the accused's stake only when the proof was not slashed
// before, at least SlashQuorum attesters are backed by stake of distinct accounts other than
// the accused's, and the accused is backed by stake.

// SlashQuorum is how many attesters backed by stake a slash needs.
const SlashQuorum = 2

// SlashShare is the share of the accused's staked NEURO a slash burns, in percent.
const SlashShare = 50

// MaxAttestations bounds a slash's attestations (a transaction stays under MaxTxBytes).
const MaxAttestations = 6

// ProofIDLen is the length of a fraud proof's ID (a SHA-256).
const ProofIDLen = 32

// slashDomain separates an attestation from anything else a peer key signs.
const slashDomain = "neuroshard slash v1\x00"

// SlashMessage is what a peer key signs to attest that the accused's fraud proof convicts it.
func SlashMessage(accused []byte, proof [ProofIDLen]byte) []byte {
	return append(append([]byte(slashDomain), accused...), proof[:]...)
}

// Attestation is a peer's signature of SlashMessage.
type Attestation struct {
	Peer []byte // raw ed25519 public key
	Sig  []byte
}

// SlashEvidence is a slash's proof ID and attestations.
type SlashEvidence struct {
	Proof        [ProofIDLen]byte
	Attestations []Attestation
}

// ErrSlashed marks a fraud proof slashed before (the transaction applies, and slashes nothing).
var ErrSlashed = errors.New("ledger: proof slashed already")

func (e *SlashEvidence) check(accused []byte) error {
	if len(e.Attestations) == 0 || len(e.Attestations) > MaxAttestations {
		return fmt.Errorf("%w: %d attestations (1..%d)", ErrMalformed, len(e.Attestations), MaxAttestations)
	}
	msg := SlashMessage(accused, e.Proof)
	for i, a := range e.Attestations {
		if len(a.Peer) != ed25519.PublicKeySize || len(a.Sig) != ed25519.SignatureSize {
			return fmt.Errorf("%w: attestation %d", ErrMalformed, i)
		}
		if bytes.Equal(a.Peer, accused) {
			return fmt.Errorf("%w: the accused attests against itself", ErrMalformed)
		}
		for _, b := range e.Attestations[:i] {
			if bytes.Equal(a.Peer, b.Peer) {
				return fmt.Errorf("%w: one peer attests twice", ErrMalformed)
			}
		}
		if !ed25519.Verify(a.Peer, msg, a.Sig) {
			return fmt.Errorf("%w: attestation %d does not verify", ErrSignature, i)
		}
	}
	return nil
}

func (e *SlashEvidence) encode(enc *encoder) {
	enc.raw(e.Proof[:])
	enc.u8(byte(len(e.Attestations)))
	for _, a := range e.Attestations {
		enc.bytes(a.Peer)
		enc.bytes(a.Sig)
	}
}

func decodeSlash(d *decoder) *SlashEvidence {
	e := &SlashEvidence{}
	copy(e.Proof[:], d.take(ProofIDLen))
	n := int(d.u8())
	if d.err == nil && (n == 0 || n > MaxAttestations) {
		d.err = fmt.Errorf("%w: %d attestations", ErrMalformed, n)
		return nil
	}
	for range n {
		a := Attestation{Peer: d.bytes(32), Sig: d.bytes(64)}
		e.Attestations = append(e.Attestations, a)
	}
	return e
}

// backingIn is the account backing a peer key within a ledger transaction.
func backingIn(txn *badger.Txn, peer []byte) (Address, bool, error) {
	prefix := append(append([]byte{}, keyBacks...), peer...)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	it.Rewind()
	if !it.ValidForPrefix(prefix) {
		return Address{}, false, nil
	}
	k := it.Item().Key()
	if len(k) != len(prefix)+AddressLen {
		return Address{}, false, fmt.Errorf("%w: binding key of %d bytes", ErrDamaged, len(k))
	}
	var a Address
	copy(a[:], k[len(prefix):])
	return a, true, nil
}

// slash works out a slash's effect in the batch: the accused's account and the NEURO to burn,
// or why it burns nothing. It writes nothing; err is the store's.
func (l *Ledger) slash(st *batchState, tx *Tx) (Address, neuro.Amount, string, error) {
	e := tx.Slash
	if _, err := st.txn.Get(slashedKey(e.Proof)); err == nil {
		return Address{}, 0, ErrSlashed.Error(), nil
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return Address{}, 0, "", err
	}
	accused, ok, err := backingIn(st.txn, tx.Peer)
	if err != nil || !ok {
		return Address{}, 0, "no account backs the accused peer", err
	}
	acct, err := st.account(accused)
	if err != nil {
		return Address{}, 0, "", err
	}
	if acct.Staked == 0 {
		return Address{}, 0, fmt.Sprintf("%s, which backs the accused, has no stake", accused), nil
	}
	seen := map[Address]bool{accused: true}
	backed := 0
	for _, a := range e.Attestations {
		addr, ok, err := backingIn(st.txn, a.Peer)
		if err != nil {
			return Address{}, 0, "", err
		}
		if !ok || seen[addr] {
			continue
		}
		seen[addr] = true
		w, err := st.account(addr)
		if err != nil {
			return Address{}, 0, "", err
		}
		if w.Staked > 0 {
			backed++
		}
	}
	if backed < SlashQuorum {
		return Address{}, 0, fmt.Sprintf("%d attesters backed by stake of their own, %d needed", backed, SlashQuorum), nil
	}
	cut := acct.Staked/100*SlashShare + acct.Staked%100*SlashShare/100 // no overflow near MaxAmount
	return accused, cut, "", nil
}

// Slashed tells what a fraud proof's slash burned, if one was applied.
func (l *Ledger) Slashed(proof [ProofIDLen]byte) (neuro.Amount, bool, error) {
	var v uint64
	found := false
	err := l.db.View(func(txn *badger.Txn) (err error) {
		v, found, err = readU64(txn, slashedKey(proof), "slash record")
		return err
	})
	return neuro.Amount(v), found, err
}

// readU64 reads an 8-byte big-endian record (what of it names it in an error).
func readU64(txn *badger.Txn, key []byte, what string) (uint64, bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return 0, false, err
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("%w: %s of %d bytes", ErrDamaged, what, len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}
