package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/neuroshard/neuroshard/ledger/neuro"
)

// ErrClosed is returned by a ledger that was closed.
var ErrClosed = errors.New("ledger: closed")

// ErrNetwork is returned when a data dir holds the ledger of another network.
var ErrNetwork = errors.New("ledger: the database belongs to another network")

// Key layout. Every transaction the ledger applies gets the next local sequence number; the
// sequence log is what peers replay to catch up.
var (
	keyMeta     = []byte("meta/")    // meta/network, meta/supply, meta/cursor/<name>
	keySeq      = []byte("seq/")     // seq/<seq> -> encoded tx
	keyTx       = []byte("tx/")      // tx/<id> -> seq
	keyNonce    = []byte("nonce/")   // nonce/<addr><nonce> -> tx id
	keyAccount  = []byte("acct/")    // acct/<addr> -> account
	keyHistory  = []byte("hist/")    // hist/<addr><seq> -> empty
	keyProof    = []byte("proof/")   // proof/<proof id> -> tx id
	keyReward   = []byte("rwd/")     // rwd/<addr><seq> -> empty: the rewards of an address
	keyEquivoc  = []byte("equivoc/") // equivoc/<addr><nonce><tx id> -> encoded tx
	keyRoundAt  = []byte("roundat/") // roundat/<addr> -> the proof time of its last round reward
	keyBound    = []byte("bound/")   // bound/<addr> -> the peer key its latest bind names
	keyBacks    = []byte("backs/")   // backs/<peer key><addr> -> empty: the accounts bound to a peer
	keySlashed  = []byte("slashed/") // slashed/<proof id> -> the NEURO its slash burned
	keyNetwork  = []byte("meta/network")
	keySupply   = []byte("meta/supply")
	maxPoolSize = 4096 // out-of-order transactions waiting for their predecessors
	maxPoolAddr = 64
)

// MaxClockSkew bounds how far a fresh transaction's time may be from this node's clock.
const MaxClockSkew = 10 * time.Minute

// Ledger is the NEURO ledger in a badger database. Writes go through one goroutine that
// commits queued transactions together (one fsync for a group), so a transaction is durable
// when Apply or Submit returns.
type Ledger struct {
	db     *badger.DB
	dir    string
	params Params
	// existing is set when the directory held a ledger before this Open.
	existing bool
	log      *slog.Logger

	reqs    chan *request
	done    chan struct{} // closed by Close: take no more requests
	stopped chan struct{} // closed when the writer has exited: nothing will answer
	wg      sync.WaitGroup

	mu     sync.Mutex // guards the fields below, owned by the writer between commits
	seq    uint64
	minted neuro.Amount
	burned neuro.Amount
	pool   map[Address]map[uint64]*Tx
	pooled int

	closeOnce sync.Once
}

// Options tune how the database runs; the zero value suits a node.
type Options struct {
	// InMemory keeps the database in memory (benchmarks of the ledger's own cost).
	InMemory bool
	// Logger receives badger's warnings and errors (nil: the package logger).
	Logger *slog.Logger
}

// Open opens (or creates, funding the genesis accounts) the ledger in dir.
func Open(dir string, params Params, o Options) (*Ledger, error) {
	if err := params.Validate(); err != nil {
		return nil, err
	}
	lg := o.Logger
	if lg == nil {
		lg = slog.Default().With("pkg", "ledger")
	}
	bo := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithLogger(badgerLogger{lg}).
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithBlockCacheSize(16 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		WithDetectConflicts(false).   // one writer goroutine
		WithVerifyValueChecksum(true) // tables are verified by checkFiles before badger opens them
	if o.InMemory {
		bo = bo.WithDir("").WithValueDir("").WithInMemory(true)
	} else if err := checkFiles(dir, bo); err != nil {
		return nil, err
	}
	db, err := openBadger(dir, bo)
	if err != nil {
		if errors.Is(err, ErrDamaged) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: open %s: %v; %s", ErrDamaged, dir, err, wayOut(dir))
	}
	l := &Ledger{db: db, dir: dir, params: params, log: lg, reqs: make(chan *request, 1024), done: make(chan struct{}), stopped: make(chan struct{}),
		pool: map[Address]map[uint64]*Tx{}}
	l.existing = !o.InMemory && hasMarker(dir)
	if err := l.load(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	if !o.InMemory && !l.existing {
		if err := writeMarker(dir, params.ID()); err != nil {
			return nil, errors.Join(fmt.Errorf("ledger: %w", err), db.Close())
		}
	}
	l.wg.Add(1)
	go l.writer()
	return l, nil
}

// load reads the ledger's counters, or writes the genesis state into an empty database.
func (l *Ledger) load() error {
	return l.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(keyNetwork)
		if errors.Is(err, badger.ErrKeyNotFound) {
			if l.existing {
				return fmt.Errorf("%w: %s held a ledger but its database has no network record (lost contents); %s",
					ErrDamaged, l.dir, wayOut(l.dir))
			}
			if err := txn.Set(keyNetwork, []byte(l.params.ID())); err != nil {
				return err
			}
			for _, a := range l.params.sortedGenesis() {
				acct := Account{Available: l.params.Genesis[a]}
				if err := txn.Set(accountKey(a), acct.encode()); err != nil {
					return err
				}
			}
			l.minted = l.params.genesisTotal()
			return txn.Set(keySupply, l.supplyBytes(l.minted, 0, 0))
		}
		if err != nil {
			return err
		}
		id, _ := item.ValueCopy(nil)
		if string(id) != l.params.ID() {
			return fmt.Errorf("%w: it holds network %s, this node runs %s", ErrNetwork, id, l.params.ID())
		}
		item, err = txn.Get(keySupply)
		if err != nil {
			return fmt.Errorf("%w: %s: supply record: %v; %s", ErrDamaged, l.dir, err, wayOut(l.dir))
		}
		v, err := item.ValueCopy(nil)
		if err != nil || len(v) != 24 {
			return fmt.Errorf("%w: %s: unreadable supply record (%v); %s", ErrDamaged, l.dir, err, wayOut(l.dir))
		}
		l.minted, l.burned, l.seq = neuro.Amount(binary.BigEndian.Uint64(v)), neuro.Amount(binary.BigEndian.Uint64(v[8:])), binary.BigEndian.Uint64(v[16:])
		return nil
	})
}

func (l *Ledger) supplyBytes(minted, burned neuro.Amount, seq uint64) []byte {
	var e encoder
	e.u64(uint64(minted))
	e.u64(uint64(burned))
	e.u64(seq)
	return e.b
}

// Close stops the writer (queued transactions fail with ErrClosed) and closes the database.
func (l *Ledger) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		l.wg.Wait()
		err = l.db.Close()
	})
	return err
}

// Params are the network rules this ledger runs.
func (l *Ledger) Params() Params { return l.params }

// Supply is the NEURO minted (genesis and rewards) and burned (fees) so far, and the number
// of transactions applied.
func (l *Ledger) Supply() (minted, burned neuro.Amount, seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.minted, l.burned, l.seq
}

func accountKey(a Address) []byte { return append(append([]byte{}, keyAccount...), a[:]...) }

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte{}, keySeq...), seq)
}

func txKey(id string) []byte { return append(append([]byte{}, keyTx...), id...) }

func nonceKey(a Address, n uint64) []byte {
	return binary.BigEndian.AppendUint64(append(append([]byte{}, keyNonce...), a[:]...), n)
}

func historyKey(a Address, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(append([]byte{}, keyHistory...), a[:]...), seq)
}

func rewardKey(a Address, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(append([]byte{}, keyReward...), a[:]...), seq)
}

func roundAtKey(a Address) []byte { return append(append([]byte{}, keyRoundAt...), a[:]...) }

func slashedKey(proof [ProofIDLen]byte) []byte {
	return append(append([]byte{}, keySlashed...), proof[:]...)
}

func boundKey(a Address) []byte { return append(append([]byte{}, keyBound...), a[:]...) }

func backsKey(peer []byte, a Address) []byte {
	return append(append(append([]byte{}, keyBacks...), peer...), a[:]...)
}

func proofKey(id string) []byte { return append(append([]byte{}, keyProof...), id...) }

func equivocKey(a Address, n uint64, id string) []byte {
	return append(binary.BigEndian.AppendUint64(append(append([]byte{}, keyEquivoc...), a[:]...), n), id...)
}

// badgerLogger sends badger's warnings and errors to slog and drops its chatter.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Infof(string, ...any)        {}
func (b badgerLogger) Debugf(string, ...any)       {}
