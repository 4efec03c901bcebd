package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/neuroshard/neuroshard/ledger/neuro"
)

// ErrQueued is returned for a transaction that arrived before its predecessors: it waits in
// memory and is applied when they arrive (or is found again by catch-up).
var ErrQueued = errors.New("ledger: waiting for the sender's earlier transactions")

// maxBatch bounds how many requests one commit carries (and so a badger transaction's size).
const maxBatch = 128

// Result tells what became of a transaction.
type Result struct {
	Tx  *Tx
	Seq uint64 // position in this ledger's log
	Err error
}

type request struct {
	tx     *Tx
	fresh  bool    // from gossip or a local submission: its time must be near this clock
	wallet *Wallet // Submit: the writer numbers and signs tx with this wallet
	now    time.Time
	result chan Result
}

// Apply validates a signed transaction and applies it durably. fresh transactions (just
// gossiped) must carry a time within MaxClockSkew of this node's clock; transactions replayed
// by catch-up are old by nature. A transaction whose predecessors are missing is held (ErrQueued).
func (l *Ledger) Apply(tx *Tx, fresh bool) Result {
	return l.do(&request{tx: tx, fresh: fresh, now: time.Now()})
}

// ApplyAll applies transactions in order (a catch-up page), committing them together.
func (l *Ledger) ApplyAll(txs []*Tx) []Result {
	reqs := make([]*request, len(txs))
	for i, tx := range txs {
		reqs[i] = &request{tx: tx, now: time.Now(), result: make(chan Result, 1)}
		if !l.enqueue(reqs[i]) {
			reqs[i].result <- Result{Tx: tx, Err: ErrClosed}
		}
	}
	out := make([]Result, len(txs))
	for i, r := range reqs {
		out[i] = l.wait(r)
	}
	return out
}

// Submit numbers, signs and applies a transaction from the wallet: tx carries the type,
// recipient, amount, fee, days, memo or proof; the ledger sets PubKey, Nonce, Time and Sig
// when its turn comes, so concurrent submissions from one wallet never collide on a nonce.
func (l *Ledger) Submit(w *Wallet, tx Tx) Result {
	return l.do(&request{tx: &tx, wallet: w, fresh: true, now: time.Now()})
}

func (l *Ledger) do(r *request) Result {
	r.result = make(chan Result, 1)
	if !l.enqueue(r) {
		return Result{Tx: r.tx, Err: ErrClosed}
	}
	return l.wait(r)
}

// wait returns a request's result, or ErrClosed for a request that slipped into the queue
// as the writer stopped (nothing will answer it, and nothing of it was applied).
func (l *Ledger) wait(r *request) Result {
	select {
	case res := <-r.result:
		return res
	case <-l.stopped:
		select {
		case res := <-r.result:
			return res
		default:
			return Result{Tx: r.tx, Err: ErrClosed}
		}
	}
}

func (l *Ledger) enqueue(r *request) bool {
	select {
	case <-l.done:
		return false
	default:
	}
	select {
	case l.reqs <- r:
		return true
	case <-l.done:
		return false
	}
}

func (l *Ledger) writer() {
	defer l.wg.Done()
	defer close(l.stopped)
	for {
		var batch []*request
		select {
		case <-l.done:
			l.failQueued()
			return
		case r := <-l.reqs:
			batch = append(batch, r)
		}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		l.commit(batch)
	}
}

func (l *Ledger) failQueued() {
	for {
		select {
		case r := <-l.reqs:
			r.result <- Result{Tx: r.tx, Err: ErrClosed}
		default:
			return
		}
	}
}

// batchState is the ledger as one commit sees it: accounts read once and written at the end.
type batchState struct {
	txn            *badger.Txn
	accounts       map[Address]*Account
	minted, burned neuro.Amount
	seq            uint64
}

func (s *batchState) account(a Address) (*Account, error) {
	if acct, ok := s.accounts[a]; ok {
		return acct, nil
	}
	acct := &Account{}
	item, err := s.txn.Get(accountKey(a))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return nil, err
	default:
		v, _ := item.ValueCopy(nil)
		if *acct, err = decodeAccount(v); err != nil {
			return nil, err
		}
	}
	s.accounts[a] = acct
	return acct, nil
}

func (l *Ledger) commit(batch []*request) {
	txn := l.db.NewTransaction(true)
	defer txn.Discard()
	l.mu.Lock()
	st := &batchState{txn: txn, accounts: map[Address]*Account{}, minted: l.minted, burned: l.burned, seq: l.seq}
	l.mu.Unlock()
	results := make([]Result, len(batch))
	var applied []*Tx // from the pool, with no requester
	for i, r := range batch {
		results[i] = l.applyIn(st, r)
		if results[i].Err == nil {
			applied = append(applied, l.drainPool(st, results[i].Tx)...)
		}
	}
	err := func() error {
		for a, acct := range st.accounts {
			if err := txn.Set(accountKey(a), acct.encode()); err != nil {
				return err
			}
		}
		if err := txn.Set(keySupply, l.supplyBytes(st.minted, st.burned, st.seq)); err != nil {
			return err
		}
		return txn.Commit()
	}()
	if err != nil {
		err = fmt.Errorf("ledger: commit: %w", err)
		l.log.Error("ledger commit failed; the batch is not applied", "txs", len(batch), "err", err)
		for i := range results {
			if results[i].Err == nil {
				results[i].Err, results[i].Seq = err, 0
			}
		}
	} else {
		l.mu.Lock()
		l.minted, l.burned, l.seq = st.minted, st.burned, st.seq
		l.mu.Unlock()
		if len(applied) > 0 {
			l.log.Debug("applied held transactions", "count", len(applied))
		}
	}
	for i, r := range batch {
		r.result <- results[i]
	}
}

// applyIn validates one request against the batch's state and writes its effects into the
// badger transaction. A refused transaction writes nothing but equivocation evidence.
func (l *Ledger) applyIn(st *batchState, r *request) Result {
	tx := r.tx
	if r.wallet != nil {
		acct, err := st.account(r.wallet.Address())
		if err != nil {
			return Result{Tx: tx, Err: err}
		}
		tx.Nonce = acct.Nonce + 1
		tx.Time = max(r.now.UnixMilli(), acct.LastTime)
		tx.Sign(r.wallet)
	}
	if err := tx.Check(l.params); err != nil {
		return Result{Tx: tx, Err: err}
	}
	if d := time.UnixMilli(tx.Time).Sub(r.now); d > MaxClockSkew || r.fresh && d < -MaxClockSkew {
		// Replayed by catch-up, a transaction is old by nature, but never from the future: a
		// peer could otherwise date its transactions ahead (and every later one of the
		// account after them) through catch-up alone. Refused now, it applies once its time
		// has come (the next catch-up asks again).
		return Result{Tx: tx, Err: fmt.Errorf("%w: %s is %s from this node's clock", ErrClock, tx.Timestamp().Format(time.RFC3339), d.Round(time.Second))}
	}
	seq, err := l.applyChecked(st, tx, true)
	return Result{Tx: tx, Seq: seq, Err: err}
}

// roundSpacing refuses a round reward whose proof comes less than RoundRewardMillis after the
// worker's last round reward (in the worker's nonce order, the same on every ledger).
func (l *Ledger) roundSpacing(st *batchState, tx *Tx) error {
	gap := l.params.RoundRewardMillis
	if tx.Proof.Kind != ProofRound || gap <= 0 {
		return nil
	}
	v, ok, err := readU64(st.txn, roundAtKey(tx.From()), "round reward record of "+tx.From().String())
	if err != nil || !ok {
		return err
	}
	if last, at := int64(v), tx.Proof.At(); at < last+gap {
		return fmt.Errorf("%w: a round reward %v after the last one (one per %v)", ErrProof,
			time.Duration(at-last)*time.Millisecond, time.Duration(gap)*time.Millisecond)
	}
	return nil
}

// applyChecked applies a transaction whose form and signature were checked.
func (l *Ledger) applyChecked(st *batchState, tx *Tx, mayHold bool) (uint64, error) {
	id, from := tx.ID(), tx.From()
	item, err := st.txn.Get(nonceKey(from, tx.Nonce))
	switch {
	case err == nil:
		prev, _ := item.ValueCopy(nil)
		if string(prev) == id {
			return 0, ErrDuplicate
		}
		if err := st.txn.Set(equivocKey(from, tx.Nonce, id), tx.Encode()); err != nil {
			return 0, err
		}
		l.log.Warn("equivocation: two transactions with one nonce", "from", from, "nonce", tx.Nonce, "kept", string(prev), "refused", id)
		return 0, fmt.Errorf("%w: %s nonce %d is %s", ErrEquivocation, from, tx.Nonce, prev)
	case !errors.Is(err, badger.ErrKeyNotFound):
		return 0, err
	}
	acct, err := st.account(from)
	if err != nil {
		return 0, err
	}
	if tx.Nonce > acct.Nonce+1 {
		if mayHold && l.hold(tx) {
			return 0, fmt.Errorf("%w: nonce %d, the account is at %d", ErrQueued, tx.Nonce, acct.Nonce)
		}
		return 0, fmt.Errorf("%w: %d, the account expects %d", ErrNonce, tx.Nonce, acct.Nonce+1)
	}
	if tx.Type == TxReward {
		if _, err := st.txn.Get(proofKey(tx.Proof.ID())); err == nil {
			return 0, fmt.Errorf("%w: %s was already rewarded", ErrProof, tx.Proof.ID())
		}
		if err := l.roundSpacing(st, tx); err != nil {
			return 0, err
		}
		if need := l.params.RoundRewardStake; tx.Proof.Kind == ProofRound && need > 0 && acct.Staked < need {
			return 0, fmt.Errorf("%w: a round reward on this network needs %s staked by its worker (it has %s)", ErrProof, need, acct.Staked)
		}
	}
	to := &Account{}
	if tx.Type == TxSend || tx.Type == TxPayment {
		if to, err = st.account(tx.To); err != nil {
			return 0, err
		}
	}
	var slashed Address
	var cut neuro.Amount
	if tx.Type == TxSlash {
		// Whatever it finds, the slash applies (and spends its nonce) on every ledger alike.
		var why string
		if slashed, cut, why, err = l.slash(st, tx); err != nil {
			return 0, err
		}
		if why != "" {
			l.log.Info("slash applied without effect", "tx", id, "reason", why)
		}
	}
	// applyTx changes the accounts only on success.
	eff, err := applyTx(l.params, tx, acct, to)
	if err != nil {
		return 0, err
	}
	seq := st.seq + 1
	sets := [][2][]byte{
		{seqKey(seq), tx.Encode()},
		{txKey(id), seqKey(seq)[len(keySeq):]},
		{nonceKey(from, tx.Nonce), []byte(id)},
		{historyKey(from, seq), nil},
	}
	if tx.Type == TxSend || tx.Type == TxPayment {
		sets = append(sets, [2][]byte{historyKey(tx.To, seq), nil})
	}
	if tx.Type == TxReward {
		sets = append(sets, [2][]byte{proofKey(tx.Proof.ID()), []byte(id)}, [2][]byte{rewardKey(from, seq), nil})
		if tx.Proof.Kind == ProofRound {
			sets = append(sets, [2][]byte{roundAtKey(from), binary.BigEndian.AppendUint64(nil, uint64(tx.Proof.At()))})
		}
	}
	if tx.Type == TxBind {
		if err := rebind(st.txn, from, tx.Peer); err != nil {
			return 0, err
		}
	}
	if cut > 0 {
		a, err := st.account(slashed)
		if err != nil {
			return 0, err
		}
		a.Staked -= cut
		if a.Staked == 0 {
			a.StakeStart, a.StakeDays, a.Unlock = 0, 0, 0
		}
		eff.burned += cut
		sets = append(sets, [2][]byte{slashedKey(tx.Slash.Proof), binary.BigEndian.AppendUint64(nil, uint64(cut))},
			[2][]byte{historyKey(slashed, seq), nil})
		l.log.Warn("stake slashed", "account", slashed, "burned", cut, "tx", id)
	}
	for _, kv := range sets {
		if err := st.txn.Set(kv[0], kv[1]); err != nil {
			return 0, err
		}
	}
	st.seq = seq
	st.minted += eff.minted
	st.burned += eff.burned
	return seq, nil
}

// rebind makes peer the one an account backs, in place of the one it backed before.
func rebind(txn *badger.Txn, a Address, peer []byte) error {
	item, err := txn.Get(boundKey(a))
	switch {
	case err == nil:
		old, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if err := txn.Delete(backsKey(old, a)); err != nil {
			return err
		}
	case !errors.Is(err, badger.ErrKeyNotFound):
		return err
	}
	if err := txn.Set(boundKey(a), peer); err != nil {
		return err
	}
	return txn.Set(backsKey(peer, a), nil)
}

// hold keeps an early transaction until its predecessors arrive; false if the pool is full.
func (l *Ledger) hold(tx *Tx) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	from := tx.From()
	m := l.pool[from]
	if l.pooled >= maxPoolSize || len(m) >= maxPoolAddr {
		return false
	}
	if m == nil {
		m = map[uint64]*Tx{}
		l.pool[from] = m
	}
	if _, ok := m[tx.Nonce]; !ok {
		m[tx.Nonce] = tx
		l.pooled++
	}
	return true
}

// drainPool applies the held transactions that follow tx from its sender.
func (l *Ledger) drainPool(st *batchState, tx *Tx) []*Tx {
	from := tx.From()
	var applied []*Tx
	for n := tx.Nonce + 1; len(applied) < maxBatch; n++ {
		l.mu.Lock()
		next, ok := l.pool[from][n]
		if ok {
			delete(l.pool[from], n)
			l.pooled--
			if len(l.pool[from]) == 0 {
				delete(l.pool, from)
			}
		}
		l.mu.Unlock()
		if !ok {
			break
		}
		if _, err := l.applyChecked(st, next, false); err != nil {
			l.log.Debug("held transaction refused", "tx", next.ID(), "err", err)
			break
		}
		applied = append(applied, next)
	}
	return applied
}
