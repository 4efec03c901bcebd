package ledger

import (
	"encoding/binary"
	"errors"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/neuroshard/neuroshard/ledger/neuro"
)

// Account reads an address's account (the zero account if it never took part).
func (l *Ledger) Account(a Address) (Account, error) {
	var acct Account
	err := l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(accountKey(a))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			acct, err = decodeAccount(v)
			return err
		})
	})
	return acct, err
}

// Entry is a transaction in the log with its local sequence number.
type Entry struct {
	Seq uint64
	Tx  *Tx
}

// History lists an address's transactions newest first, skipping offset and returning at most
// limit, with the total count.
func (l *Ledger) History(a Address, limit, offset int) ([]Entry, int, error) {
	return l.indexed(append(append([]byte{}, keyHistory...), a[:]...), limit, offset)
}

// Rewards lists the reward transactions of an address newest first, like History.
func (l *Ledger) Rewards(a Address, limit, offset int) ([]Entry, int, error) {
	return l.indexed(append(append([]byte{}, keyReward...), a[:]...), limit, offset)
}

// indexed pages through an index of <prefix><seq> keys, newest first.
func (l *Ledger) indexed(prefix []byte, limit, offset int) ([]Entry, int, error) {
	var seqs []uint64
	total := 0
	err := l.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues, opts.Reverse, opts.Prefix = false, true, prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(append(append([]byte{}, prefix...), 0xff)); it.ValidForPrefix(prefix); it.Next() {
			if total >= offset && len(seqs) < limit {
				seqs = append(seqs, binary.BigEndian.Uint64(it.Item().Key()[len(prefix):]))
			}
			total++
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	out := make([]Entry, 0, len(seqs))
	err = l.db.View(func(txn *badger.Txn) error {
		for _, s := range seqs {
			tx, err := getTx(txn, s)
			if err != nil {
				return err
			}
			out = append(out, Entry{Seq: s, Tx: tx})
		}
		return nil
	})
	return out, total, err
}

func getTx(txn *badger.Txn, seq uint64) (*Tx, error) {
	item, err := txn.Get(seqKey(seq))
	if err != nil {
		return nil, err
	}
	var tx *Tx
	err = item.Value(func(v []byte) error {
		tx, err = DecodeTx(v)
		return err
	})
	return tx, err
}

// Lookup finds an applied transaction by ID.
func (l *Ledger) Lookup(id string) (Entry, bool, error) {
	var e Entry
	err := l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(txKey(id))
		if err != nil {
			return err
		}
		v, _ := item.ValueCopy(nil)
		e.Seq = binary.BigEndian.Uint64(v)
		e.Tx, err = getTx(txn, e.Seq)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Entry{}, false, nil
	}
	return e, err == nil, err
}

// Since returns the encoded transactions of this ledger's log after seq, in order, at most
// max of them and about maxBytes, for a peer catching up.
func (l *Ledger) Since(seq uint64, max, maxBytes int) ([][]byte, error) {
	var out [][]byte
	size := 0
	err := l.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = keySeq
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(seqKey(seq + 1)); it.ValidForPrefix(keySeq) && len(out) < max && size < maxBytes; it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out = append(out, v)
			size += len(v)
		}
		return nil
	})
	return out, err
}

// Equivocation is evidence that one key signed two transactions with the same nonce.
type Equivocation struct {
	From  Address
	Nonce uint64
	Tx    *Tx // the refused one; the kept one is the applied transaction of that nonce
}

// Equivocations lists recorded equivocations, at most limit.
func (l *Ledger) Equivocations(limit int) ([]Equivocation, error) {
	var out []Equivocation
	err := l.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = keyEquivoc
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(keyEquivoc) && len(out) < limit; it.Next() {
			k := it.Item().Key()[len(keyEquivoc):]
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			tx, err := DecodeTx(v)
			if err != nil {
				return err
			}
			var e Equivocation
			copy(e.From[:], k)
			e.Nonce = binary.BigEndian.Uint64(k[AddressLen:])
			e.Tx = tx
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Audit sums every account and checks the ledger's invariant: the NEURO held equals the NEURO
// minted minus the NEURO burned, and no balance is negative. It returns the sum it found.
func (l *Ledger) Audit() (neuro.Amount, error) {
	var sum, minted, burned neuro.Amount
	var bad error
	err := l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keySupply) // read in the same snapshot as the accounts
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil || len(v) != 24 {
			return errors.Join(err, errors.New("ledger audit: corrupt supply record"))
		}
		minted, burned = neuro.Amount(binary.BigEndian.Uint64(v)), neuro.Amount(binary.BigEndian.Uint64(v[8:]))
		opts := badger.DefaultIteratorOptions
		opts.Prefix = keyAccount
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(keyAccount); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			a, err := decodeAccount(v)
			if err != nil {
				return err
			}
			if a.Available < 0 || a.Staked < 0 {
				var addr Address
				copy(addr[:], it.Item().Key()[len(keyAccount):])
				bad = errors.Join(bad, errors.New("ledger audit: negative balance of "+addr.String()))
			}
			sum += a.Total()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if sum != minted-burned {
		bad = errors.Join(bad, errors.New("ledger audit: accounts hold "+sum.String()+" NEURO, minted-burned is "+(minted-burned).String()))
	}
	return sum, bad
}

func cursorKey(name string) []byte { return append(append([]byte{}, keyMeta...), "cursor/"+name...) }

// Cursor is a named position in another ledger's log (how far this node has replayed a
// peer's log); 0 if never set.
func (l *Ledger) Cursor(name string) (uint64, error) {
	var v uint64
	err := l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(cursorKey(name))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			if len(b) == 8 {
				v = binary.BigEndian.Uint64(b)
			}
			return nil
		})
	})
	return v, err
}

// SetCursor stores a named position.
func (l *Ledger) SetCursor(name string, v uint64) error {
	return l.db.Update(func(txn *badger.Txn) error {
		return txn.Set(cursorKey(name), binary.BigEndian.AppendUint64(nil, v))
	})
}

// Backing is the account that backs a peer with its stake: of the accounts whose latest bind
// names the peer's key, the one with the lowest address (one rule whatever order the binds
// came in; a peer key that consented to several accounts gains nothing from it).
type Backing struct {
	Address Address
	Account Account
}

// Backing returns the account backing a peer key (raw ed25519), if any account is bound to it.
func (l *Ledger) Backing(peer []byte) (Backing, bool, error) {
	var b Backing
	found := false
	err := l.db.View(func(txn *badger.Txn) (err error) {
		b.Address, found, err = backingIn(txn, peer)
		return err
	})
	if err != nil || !found {
		return Backing{}, false, err
	}
	b.Account, err = l.Account(b.Address)
	return b, err == nil, err
}

// Bound is the peer key an account's latest bind names (nil: none).
func (l *Ledger) Bound(a Address) ([]byte, error) {
	var peer []byte
	err := l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(boundKey(a))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		peer, err = item.ValueCopy(nil)
		return err
	})
	return peer, err
}
