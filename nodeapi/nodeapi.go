package nodeapi

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/neuroshard/neuroshard/coverage"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/ledger/ledgersync"
	"github.com/neuroshard/neuroshard/p2p"
	"github.com/neuroshard/neuroshard/pipeline"
	"github.com/neuroshard/neuroshard/settings"
	"github.com/neuroshard/neuroshard/tasks"
)

func logger() *slog.Logger { return slog.Default().With("pkg", "nodeapi") }

// Node is what the API asks of the node itself: who it is, its state, and its training.
// node.Node implements it.
type Node interface {
	ID() string
	State() string      // created, starting, running, stopping, stopped
	Started() time.Time // zero before Start
	Span() layers.Span
	Stage() *layers.Stage // nil before Start
	ServedHash() string   // hash of the weights inference runs on; "" before Start
	APIPort() int
	CheckDataDir() error // nil when the data dir is writable
	Training() TrainingView
	Benchmark() *layers.BenchResult // nil until measured
	MemoryBudget() int64            // what the node may spend on its span
}

// Config is the node and the parts the API answers from.
type Config struct {
	Node      Node
	Version   string
	DataDir   string
	Bootstrap []string
	Model     layers.Config
	Host      *p2p.Host
	Coverage  *coverage.Cache
	Pipeline  *pipeline.Pipeline
	Ledger    *ledger.Ledger
	Wallet    *ledger.Wallet
	Sync      *ledgersync.Sync
	Settings  *settings.Store
}

// API is the REST API's backend over one node.
type API struct {
	node      Node
	version   string
	dataDir   string
	bootstrap []string
	model     layers.Config
	host      *p2p.Host
	cov       *coverage.Cache
	pipe      *pipeline.Pipeline
	ledger    *ledger.Ledger
	wallet    *ledger.Wallet
	lsync     *ledgersync.Sync
	settings  *settings.Store

	tasks   *tasks.Queue
	events  eventBus
	rounds  roundBook
	metrics inferenceMetrics
	cpu     cpuSampler

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	auditing sync.WaitGroup // audits under way
}

// tasksDir is where the task queue lives in the data dir.
const tasksDir = "tasks"

// New builds the backend and opens its task queue (in the data dir); Start runs it.
func New(cfg Config) (*API, error) {
	if cfg.Node == nil || cfg.Host == nil || cfg.Coverage == nil || cfg.Pipeline == nil || cfg.Ledger == nil ||
		cfg.Wallet == nil || cfg.Sync == nil || cfg.Settings == nil || cfg.DataDir == "" {
		return nil, errors.New("nodeapi: incomplete config")
	}
	a := &API{node: cfg.Node, version: cfg.Version, dataDir: cfg.DataDir, bootstrap: cfg.Bootstrap, model: cfg.Model,
		host: cfg.Host, cov: cfg.Coverage, pipe: cfg.Pipeline, ledger: cfg.Ledger, wallet: cfg.Wallet, lsync: cfg.Sync,
		settings: cfg.Settings}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	q, err := tasks.Open(filepath.Join(cfg.DataDir, tasksDir), a.runTask, tasks.Options{Workers: taskWorkers, OnEvent: a.taskEvent})
	if err != nil {
		return nil, err
	}
	a.tasks = q
	return a, nil
}

// Start runs the task workers and the node.status events.
func (a *API) Start() {
	a.tasks.Start()
	a.wg.Add(1)
	go a.statusLoop()
}

// Close stops the task queue (keeping what is queued), ends every event subscription and
// waits for the background work, such as payments of requests that finished.
func (a *API) Close() error {
	a.cancel()
	err := a.tasks.Close()
	a.wg.Wait()
	a.closeEvents()
	return err
}

// Failover counts a stage replaced mid-request (the pipeline calls it).
func (a *API) Failover() { a.metrics.failover() }
