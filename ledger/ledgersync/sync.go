package ledgersync

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/p2p"
)

func logger() *slog.Logger { return slog.Default().With("pkg", "ledgersync") }

// Config builds a Sync.
type Config struct {
	Host   *p2p.Host
	Ledger *ledger.Ledger
	Wallet *ledger.Wallet // the node's own: what it submits is signed by it
	// ModelLayers is the model's layer count: a stage earns its layers' share of the price.
	ModelLayers int
	// Interval is how often every peer's log is replayed (new peers are caught up at once).
	Interval time.Duration
}

// Sync gossips, replays, pays and claims for one node's ledger.
type Sync struct {
	host        *p2p.Host
	ledger      *ledger.Ledger
	wallet      *ledger.Wallet
	modelLayers int
	interval    time.Duration

	topic         *p2p.Topic
	kick          chan struct{}
	syncMu        sync.Mutex // one replay at a time: cursors and the log stay in step
	refusedClaims atomic.Int64
	payees        payees
	slash         slashing
	rounds        gathering

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New prepares the ledger's travel; nothing is joined or served until Start.
func New(cfg Config) (*Sync, error) {
	if cfg.Host == nil || cfg.Ledger == nil || cfg.Wallet == nil || cfg.ModelLayers <= 0 || cfg.Interval <= 0 {
		return nil, errors.New("ledgersync: incomplete config")
	}
	s := &Sync{host: cfg.Host, ledger: cfg.Ledger, wallet: cfg.Wallet, modelLayers: cfg.ModelLayers, interval: cfg.Interval,
		kick: make(chan struct{}, 1), slash: newSlashing()}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start joins the ledger topic, serves the ledger protocol and starts the catch-up loop.
func (s *Sync) Start() error { return s.start() }

// Close stops the loops and waits for receipts in flight; the ledger stays open (its owner
// closes it after).
func (s *Sync) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// Submit signs a transaction with the node's wallet, applies it durably and gossips it. The
// error is the ledger's refusal as it is.
func (s *Sync) Submit(tx ledger.Tx) (*ledger.Tx, error) {
	r := s.ledger.Submit(s.wallet, tx)
	if r.Err != nil {
		return r.Tx, r.Err
	}
	s.publishTx(r.Tx)
	return r.Tx, nil
}

// RefusedClaims is how many reward claims the ledger refused since start.
func (s *Sync) RefusedClaims() int64 { return s.refusedClaims.Load() }

// Topic is the ledger's gossip topic (nil before Start).
func (s *Sync) Topic() *p2p.Topic { return s.topic }
