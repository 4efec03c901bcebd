package tasks

import (
	"container/heap"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/neuroshard/neuroshard/internal/badgercheck"
)

// Runner runs a task; progress reports the tokens produced so far. It must return promptly
// once ctx is done.
type Runner func(ctx context.Context, t Task, progress func(tokens int)) (Outcome, error)

// Event tells what happened to a task: task.queued, task.started, task.progress,
// task.completed, task.failed or task.cancelled.
type Event struct {
	Type   string `json:"type"`
	Task   Task   `json:"task"`
	Tokens int    `json:"tokens,omitempty"`
}

// Options tune a queue.
type Options struct {
	Workers   int          // tasks run at once (default 2)
	MaxQueued int          // tasks waiting at most (default 10,000)
	OnEvent   func(Event)  // called for every event, from the queue's goroutines; must not block
	Logger    *slog.Logger // nil: the package logger
}

// Queue is the persistent priority queue of tasks.
type Queue struct {
	db   *badger.DB
	run  Runner
	opts Options
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{}

	mu        sync.Mutex
	seq       uint64
	pending   taskHeap
	running   map[string]*runningTask
	avgRun    time.Duration // moving average of run times, for estimates
	closed    bool
	closeOnce sync.Once
}

type runningTask struct {
	cancel    context.CancelFunc
	cancelled bool // by the user (not by Close)
}

var (
	keyTask = []byte("t/")
	keySeq  = []byte("s/")
)

// Open opens (or creates) the queue in dir and re-queues every task a previous run left
// queued or running. Call Start to run them.
func Open(dir string, run Runner, o Options) (*Queue, error) {
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = 10_000
	}
	lg := o.Logger
	if lg == nil {
		lg = slog.Default().With("pkg", "tasks")
	}
	q, err := load(dir, run, o, lg)
	if err != nil && isDamage(err) {
		aside := fmt.Sprintf("%s.damaged-%s", dir, time.Now().UTC().Format("20060102T150405"))
		if rerr := os.Rename(dir, aside); rerr != nil {
			return nil, fmt.Errorf("tasks: %s is damaged (%v) and could not be moved aside: %w; move it away and restart", dir, err, rerr)
		}
		// Tasks are this node's work in progress, not state the network shares: a node that
		// cannot start because of them serves nobody, so the damaged store is kept for
		// inspection and the queue starts empty, with the reason in the log.
		lg.Error("task store damaged: moved aside, starting with an empty queue", "reason", err, "kept_at", aside)
		q, err = load(dir, run, o, lg)
	}
	return q, err
}

// load opens the store in dir and re-queues what a previous run left unfinished.
func load(dir string, run Runner, o Options, lg *slog.Logger) (*Queue, error) {
	so := storeOptions(dir)
	if err := badgercheck.Check(dir, so); err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	db, err := badgercheck.Open(so)
	if err != nil {
		return nil, fmt.Errorf("tasks: open %s: %w", dir, err)
	}
	q := &Queue{db: db, run: run, opts: o, log: lg, wake: make(chan struct{}, 1), running: map[string]*runningTask{}, avgRun: 2 * time.Second}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	requeued := 0
	err = q.each(func(t Task) {
		q.seq = max(q.seq, t.Seq)
		if !t.Status.Finished() {
			t.Status, t.StartedAt = Queued, nil
			heap.Push(&q.pending, &t)
			requeued++
		}
	})
	if err != nil {
		q.cancel()
		return nil, errors.Join(fmt.Errorf("tasks: load %s: %w", dir, err), db.Close())
	}
	if requeued > 0 {
		lg.Info("tasks from the previous run re-queued", "count", requeued)
	}
	return q, nil
}

// Start runs the workers.
func (q *Queue) Start() {
	for range q.opts.Workers {
		q.wg.Add(1)
		go q.worker()
	}
	q.signal()
}

// Close stops the workers; running tasks are interrupted and run again after the next Open.
func (q *Queue) Close() error {
	var err error
	q.closeOnce.Do(func() {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		q.cancel()
		q.wg.Wait()
		err = q.db.Close()
	})
	return err
}

func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *Queue) emit(typ string, t Task, tokens int) {
	if q.opts.OnEvent != nil {
		q.opts.OnEvent(Event{Type: typ, Task: t, Tokens: tokens})
	}
}

// Submit stores a task durably and queues it.
func (q *Queue) Submit(prompt, model string, p Priority, maxTokens int) (Task, error) {
	now := time.Now().UTC()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return Task{}, ErrClosed
	}
	if len(q.pending) >= q.opts.MaxQueued {
		return Task{}, fmt.Errorf("%w: %d tasks waiting", ErrFull, len(q.pending))
	}
	q.seq++
	t := &Task{ID: newID(now), Seq: q.seq, Prompt: prompt, Model: model, Priority: p, MaxTokens: maxTokens, Status: Queued, CreatedAt: now}
	if err := q.save(t); err != nil {
		q.seq--
		return Task{}, err
	}
	heap.Push(&q.pending, t)
	q.signal()
	q.emit("task.queued", *t, 0)
	return *t, nil
}

// Estimate is how long a task queued now would wait and run, from recent run times.
func (q *Queue) Estimate(position int) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.avgRun * time.Duration(position/q.opts.Workers+1)
}

// Ahead counts the queued tasks that run before a new task of priority p.
func (q *Queue) Ahead(p Priority) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, t := range q.pending {
		if t.Priority.rank() >= p.rank() {
			n++
		}
	}
	return n
}

func (q *Queue) save(t *Task) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return q.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(append(append([]byte{}, keyTask...), t.ID...), b); err != nil {
			return err
		}
		return txn.Set(binary.BigEndian.AppendUint64(append([]byte{}, keySeq...), t.Seq), []byte(t.ID))
	})
}

func (q *Queue) worker() {
	defer q.wg.Done()
	for {
		q.mu.Lock()
		var t *Task
		if len(q.pending) > 0 {
			t = heap.Pop(&q.pending).(*Task)
		}
		more := len(q.pending) > 0
		q.mu.Unlock()
		if t == nil {
			select {
			case <-q.ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		if more {
			q.signal() // let another idle worker take the next one
		}
		q.runOne(t)
		if q.ctx.Err() != nil {
			return
		}
	}
}

func (q *Queue) runOne(t *Task) {
	ctx, cancel := context.WithCancel(q.ctx)
	defer cancel()
	rt := &runningTask{cancel: cancel}
	now := time.Now().UTC()
	q.mu.Lock()
	t.Status, t.StartedAt = Running, &now
	t.Attempts++
	q.running[t.ID] = rt
	q.mu.Unlock()
	if err := q.save(t); err != nil {
		q.log.Error("task state not saved", "task", t.ID, "err", err)
	}
	q.emit("task.started", *t, 0)
	out, err := q.run(ctx, *t, func(tokens int) { q.emit("task.progress", *t, tokens) })
	q.mu.Lock()
	delete(q.running, t.ID)
	userCancelled := rt.cancelled
	q.mu.Unlock()
	if q.ctx.Err() != nil && !userCancelled {
		return // shutting down: the task stays "running" on disk and is re-queued at the next Open
	}
	end := time.Now().UTC()
	t.CompletedAt = &end
	switch {
	case userCancelled:
		t.Status, t.Error = Cancelled, "cancelled while running"
	case err != nil:
		t.Status, t.Error = Failed, err.Error()
	default:
		t.Status, t.Result, t.TokensUsed, t.Cost, t.Node = Completed, out.Text, out.TokensUsed, out.Cost, out.Node
		q.mu.Lock()
		q.avgRun = (q.avgRun*7 + end.Sub(now)) / 8
		q.mu.Unlock()
	}
	if err := q.save(t); err != nil {
		q.log.Error("task result not saved", "task", t.ID, "err", err)
	}
	q.emit("task."+string(t.Status), *t, t.TokensUsed)
}

// Get reads a task.
func (q *Queue) Get(id string) (Task, error) {
	var t Task
	err := q.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(append(append([]byte{}, keyTask...), id...))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &t) })
	})
	if err != nil {
		return Task{}, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, p := range q.pending { // the in-memory copy is the freshest for a queued task
		if p.ID == id {
			return *p, nil
		}
	}
	return t, nil
}

// Filter selects tasks in List.
type Filter struct {
	Status Status
	Model  string
	Limit  int
	Offset int
}

// List returns tasks newest first that match the filter, and how many match in all.
func (q *Queue) List(f Filter) ([]Task, int, error) {
	var out []Task
	total := 0
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: keySeq, Reverse: true, PrefetchValues: true})
		defer it.Close()
		for it.Seek(append(append([]byte{}, keySeq...), 0xff)); it.ValidForPrefix(keySeq); it.Next() {
			id, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			item, err := txn.Get(append(append([]byte{}, keyTask...), id...))
			if err != nil {
				return err
			}
			var t Task
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &t) }); err != nil {
				return err
			}
			if f.Status != "" && t.Status != f.Status || f.Model != "" && t.Model != f.Model {
				continue
			}
			if total >= f.Offset && len(out) < f.Limit {
				out = append(out, t)
			}
			total++
		}
		return nil
	})
	return out, total, err
}

// Cancel stops a queued task (it never runs) or a running one (its run is interrupted).
func (q *Queue) Cancel(id string) (Task, error) {
	q.mu.Lock()
	for i, t := range q.pending {
		if t.ID == id {
			heap.Remove(&q.pending, i)
			end := time.Now().UTC()
			t.Status, t.CompletedAt, t.Error = Cancelled, &end, "cancelled while queued"
			q.mu.Unlock()
			if err := q.save(t); err != nil {
				return Task{}, err
			}
			q.emit("task.cancelled", *t, 0)
			return *t, nil
		}
	}
	if rt, ok := q.running[id]; ok {
		rt.cancelled = true
		rt.cancel()
		q.mu.Unlock()
		// The worker records the cancellation when the run returns.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if t, err := q.Get(id); err != nil || t.Status.Finished() {
				return t, err
			}
			time.Sleep(10 * time.Millisecond)
		}
		return q.Get(id)
	}
	q.mu.Unlock()
	t, err := q.Get(id)
	if err != nil {
		return Task{}, err
	}
	return t, fmt.Errorf("%w: %s is %s", ErrFinished, id, t.Status)
}

// Counts are the queue's numbers by status (queued and running from memory).
type Counts struct {
	Queued, Running int
}

// Counts reports how many tasks wait and run.
func (q *Queue) Counts() Counts {
	q.mu.Lock()
	defer q.mu.Unlock()
	return Counts{Queued: len(q.pending), Running: len(q.running)}
}

// taskHeap orders tasks by priority, then submission order.
type taskHeap []*Task

func (h taskHeap) Len() int { return len(h) }
func (h taskHeap) Less(i, j int) bool {
	if a, b := h[i].Priority.rank(), h[j].Priority.rank(); a != b {
		return a > b
	}
	return h[i].Seq < h[j].Seq
}
func (h taskHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *taskHeap) Push(x any)   { *h = append(*h, x.(*Task)) }
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// Stats sums the tasks created since a time.
type Stats struct {
	Created, Completed, Failed, Cancelled int
	TokensUsed                            int
	Cost                                  int64           // micro-NEURO
	RunTimes                              []time.Duration // of the completed tasks, oldest first
}

// Stats reads the tasks created since t (all of them for the zero time).
func (q *Queue) Stats(since time.Time) (Stats, error) {
	var s Stats
	err := q.each(func(t Task) {
		if t.CreatedAt.Before(since) {
			return
		}
		s.Created++
		switch t.Status {
		case Completed:
			s.Completed++
			s.TokensUsed += t.TokensUsed
			s.Cost += t.Cost
			if t.StartedAt != nil && t.CompletedAt != nil {
				s.RunTimes = append(s.RunTimes, t.CompletedAt.Sub(*t.StartedAt))
			}
		case Failed:
			s.Failed++
		case Cancelled:
			s.Cancelled++
		}
	})
	return s, err
}

// each calls f with every stored task.
func (q *Queue) each(f func(Task)) error {
	return q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: keyTask, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var t Task
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &t) }); err != nil {
				return err
			}
			f(t)
		}
		return nil
	})
}

func storeOptions(dir string) badger.Options {
	return badger.DefaultOptions(dir).WithSyncWrites(true).WithLogger(nil).
		WithMemTableSize(8 << 20).WithNumMemtables(2).WithBlockCacheSize(8 << 20).WithNumCompactors(2).
		WithValueLogFileSize(32 << 20).WithMetricsEnabled(false).WithVerifyValueChecksum(true)
}

// isDamage tells damaged files (found by badgercheck, or reported by badger or the decoder)
// from other failures (a directory another process holds, permissions), which must not move
// the store aside.
func isDamage(err error) bool {
	if errors.Is(err, badgercheck.ErrDamaged) {
		return true
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"checksum", "corrupt", "manifest", "magic", "truncat", "unexpected eof", "invalid"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
