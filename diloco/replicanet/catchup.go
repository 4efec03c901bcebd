package replicanet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/internal/backoff"
	"github.com/neuroshard/neuroshard/internal/peerrate"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
	"golang.org/x/time/rate"
)

func logger() *slog.Logger { return slog.Default().With("pkg", "replicanet") }

// Catching up: a replica that is behind its span's round (it joined late, restarted behind,
// or missed a round) fetches theta_0, the round and the outer momentum from a replica ahead
// over /neuroshard/checkpoint/get/1.0.0; a replica ahead offers its checkpoint to one that
// gossips an older round over /neuroshard/checkpoint/put/1.0.0.

// PushInterval bounds how often a replica offers its checkpoint to one straggler.
const PushInterval = 30 * time.Second

// Catchup is a replica's catching up over libp2p.
type Catchup struct {
	Host    *p2p.Host
	Model   layers.Config
	Replica func() *diloco.Replica // nil before the node holds a span
	Span    func() layers.Span
	Reports *diloco.ReportBook
	// Holders are the span's replicas (this node's included) the coverage view knows.
	Holders func(ctx context.Context) []peer.ID
	Steps   func() int64 // inner steps taken
	Synced  func()       // called after a checkpoint was taken
	// Refresh, when set, makes the next Holders call look again if its view is not recent
	// (a requester that just joined may be missing from it).
	Refresh func()
	Ctx     context.Context
	// NoPull, when set (tests only), stops the replica from fetching checkpoints on its own.
	NoPull atomic.Bool

	busy      atomic.Bool
	backoff   backoff.Keys[peer.ID] // of catch-ups from peers that failed
	serveOnce sync.Once
	serving   *peerrate.Limiters[peer.ID] // checkpoints served, by requester
	wg        sync.WaitGroup
	pushMu    sync.Mutex
	pushedAt  map[peer.ID]time.Time
}

// Wait waits for the checkpoint pushes under way.
func (c *Catchup) Wait() { c.wg.Wait() }

// NewerReplica finds a holder of a newer round of the span that a quorum of its other holders
// report with one hash (diloco.NewerRound), or without a quorum the newest uncontradicted one
// (diloco.Newest), one whose catch-ups are not backing off.
func (c *Catchup) NewerReplica() (peer.ID, bool) {
	from, ok := c.newer()
	for _, p := range from {
		if id, err := peer.Decode(p); ok && err == nil && c.backoff.Ready(id) {
			return id, true
		}
	}
	return "", false
}

// newer lists the replicas to catch up from, backing off or not.
func (c *Catchup) newer() ([]string, bool) {
	span, fresh, holders, mine := c.Span(), c.Reports.Fresh(), c.otherHolders(), c.round()
	_, _, from, ok := diloco.NewerRound(fresh, holders, span.First, span.Last, mine)
	if !ok {
		// No quorum: the newest uncontradicted lineage of a replica never caught lying.
		if p, found := diloco.Newest(fresh, holders, span.First, span.Last, mine); found {
			from, ok = []string{p}, true
		}
	}
	return from, ok
}

// Behind tells whether the rules of NewerReplica name a replica ahead, even one whose
// catch-ups are backing off.
func (c *Catchup) Behind() bool {
	_, ok := c.newer()
	return ok
}

// otherHolders lists the span's other replicas whose votes a quorum about rounds ahead of
// this replica needs: holders in the coverage view that gossip the span at this replica's
// round or later, less those this replica excluded from a round for what they sent
// (diloco.Faulty). A holder that does not train (or is still at round 0) takes no part in the
// rounds ahead, and a poisoner is no member: counting either, two honest replicas beside it
// could never agree on a round.
func (c *Catchup) otherHolders() []string {
	ctx, cancel := context.WithTimeout(c.Ctx, 3*time.Second)
	defer cancel()
	var faulty map[string]bool
	if rep := c.Replica(); rep != nil {
		faulty = diloco.Faulty(rep.Exclusions())
	}
	span, mine, fresh := c.Span(), c.round(), c.Reports.Fresh()
	var out []string
	for _, p := range c.Holders(ctx) {
		r, seen := fresh[p.String()]
		if p == c.Host.ID() || faulty[p.String()] || !seen || r.First != span.First || r.Last != span.Last || r.Round < mine {
			continue
		}
		out = append(out, p.String())
	}
	return out
}

func (c *Catchup) round() int64 {
	if r := c.Replica(); r != nil {
		return r.State().Round
	}
	return 0
}

// Backed tells whether a quorum of the span's other holders gossips hash for round
// (diloco.Backed), and how many do.
func (c *Catchup) Backed(span layers.Span, round int64, hash string) (votes int, ok bool) {
	return diloco.Backed(c.Reports.Fresh(), c.otherHolders(), span.First, span.Last, round, hash)
}

// vouch decides whether a checkpoint of round with hash served by p may be taken
// (diloco.Vouch over the fresh reports, the span's other holders and this replica's
// exclusions).
func (c *Catchup) vouch(p peer.ID, span layers.Span, round int64, hash string) error {
	var excl []diloco.Exclusion
	if rep := c.Replica(); rep != nil {
		excl = rep.Exclusions()
	}
	holders := c.otherHolders()
	if !slices.Contains(holders, p.String()) && c.Refresh != nil {
		// A server the coverage view does not show yet (a replica that joined a moment ago,
		// or this one's view from before it): look again, as mayServe does, before
		// deciding that no holder gossips what it serves.
		c.Refresh()
		holders = c.otherHolders()
	}
	return diloco.Vouch(c.Reports.Fresh(), holders, span.First, span.Last, round, hash, p.String(), excl)
}

// CatchUp resyncs from a replica that gossips a newer round, if a quorum backs one.
func (c *Catchup) CatchUp() {
	if from, ok := c.NewerReplica(); ok {
		c.From(from)
	}
}

// From resyncs from one replica (one catch-up at a time) and reports whether it took the
// replica's checkpoint; a failure backs that replica off.
func (c *Catchup) From(from peer.ID) bool {
	if c.NoPull.Load() || !c.busy.CompareAndSwap(false, true) {
		return false
	}
	defer c.busy.Store(false)
	if err := c.Resync(c.Ctx, from, c.Steps()); err != nil {
		c.backoff.Failed(from)
		logger().Warn("catching up failed", "from", from, "err", err)
		return false
	}
	c.backoff.Succeeded(from)
	c.Synced()
	return true
}

// Checkpoints are served only to holders of the span, each at most ServeBurst at once and
// then one per ServeEvery: a request of a few bytes answered with a whole span's weights is
// an amplifier for anyone else.
const (
	ServeEvery = time.Second
	ServeBurst = 8
)

// Serve sends theta_0 of the span with the round and the outer momentum.
func (c *Catchup) Serve(from peer.ID, req p2p.CheckpointRequest) (p2p.CheckpointHead, []byte, error) {
	span, rep := c.Span(), c.Replica()
	if req.Model != c.Model.Name || (layers.Span{First: req.First, Last: req.Last}) != span || rep == nil {
		return p2p.CheckpointHead{}, nil, &p2p.RemoteError{Code: "NOT_HELD", Message: "this node does not hold that span"}
	}
	if from != c.Host.ID() {
		if err := c.mayServe(from, req); err != nil {
			return p2p.CheckpointHead{}, nil, err
		}
	}
	round, theta0, velocity := rep.Snapshot()
	vel := &layers.Params{Specs: theta0.Specs, Values: velocity}
	if len(vel.Values) == 0 {
		vel = c.Model.InitParams(span, 0)
		for _, v := range vel.Values {
			clear(v)
		}
	}
	var w, m bytes.Buffer
	meta := layers.CheckpointMeta{Model: c.Model.Name, Span: span, Round: round}
	if err := layers.EncodeParams(&w, meta, theta0); err != nil {
		return p2p.CheckpointHead{}, nil, err
	}
	if err := layers.EncodeParams(&m, meta, vel); err != nil {
		return p2p.CheckpointHead{}, nil, err
	}
	return p2p.CheckpointHead{Hash: theta0.Hash(), Round: round, Extra: m.Bytes()}, w.Bytes(), nil
}

// recordFresh is how old a peer record shown with a checkpoint request may be.
const recordFresh = 10 * time.Minute

// shows tells whether a request carries the requester's own signed peer record naming the
// span, signed within recordFresh of this node's clock. It is the same claim a provider record
// makes (anyone can announce a span), made where the DHT is slow: a joiner's provider records
// took up to 20 s to land after a replica was killed (the lookup waits on the dead peer), and
// its requests were refused meanwhile while the span's rounds waited for it.
func (c *Catchup) shows(from peer.ID, req p2p.CheckpointRequest) bool {
	if len(req.Record) == 0 {
		return false
	}
	r, err := p2p.DecodePeerRecord(req.Record)
	return err == nil && r.Peer == from && r.Model == c.Model.Name && r.First == req.First && r.Last == req.Last &&
		time.Since(time.Unix(0, int64(r.Seq))).Abs() < recordFresh
}

// mayServe admits a checkpoint request from a peer: a holder of the span in the coverage
// view, or one that shows its signed record naming it, within its rate.
func (c *Catchup) mayServe(from peer.ID, req p2p.CheckpointRequest) error {
	holds := func() bool {
		ctx, cancel := context.WithTimeout(c.Ctx, 3*time.Second)
		defer cancel()
		return slices.Contains(c.Holders(ctx), from)
	}
	ok := holds() || c.shows(from, req)
	if !ok && c.Refresh != nil {
		c.Refresh()
		ok = holds()
	}
	if !ok {
		return &p2p.RemoteError{Code: "FORBIDDEN", Message: "checkpoints go to holders of the span only; announce it first"}
	}
	c.serveOnce.Do(func() { c.serving = peerrate.New[peer.ID](rate.Every(ServeEvery), ServeBurst) })
	if r := c.serving.Get(from).Reserve(); r.Delay() > 0 {
		wait := r.Delay()
		r.Cancel()
		return &p2p.RemoteError{Code: "BUSY", Message: fmt.Sprintf("too many checkpoint requests; retry in %.1f s", wait.Seconds())}
	}
	return nil
}

// Resync replaces theta_0, the momentum and the stage's weights with a replica's.
func (c *Catchup) Resync(ctx context.Context, p peer.ID, steps int64) error {
	span := c.Span()
	req := p2p.CheckpointRequest{Model: c.Model.Name, First: span.First, Last: span.Last}
	if r := c.Host.Record(); r.Seq != 0 {
		req.Record = r.Encode()
	}
	head, data, err := c.Host.GetCheckpoint(ctx, p, req)
	if err != nil {
		return err
	}
	return c.Adopt(p, head, data, steps)
}

// Adopt checks a span checkpoint (not an older round, its content hash, the holders' gossip
// and the server's record: vouch, its distance from this replica's theta_0: Plausible) and
// makes it theta_0, the outer momentum and the stage's weights.
func (c *Catchup) Adopt(p peer.ID, head p2p.CheckpointHead, data []byte, steps int64) error {
	span, rep := c.Span(), c.Replica()
	if rep == nil {
		return fmt.Errorf("replicanet: no replica yet")
	}
	if mine := rep.State().Round; head.Round < mine {
		return fmt.Errorf("replicanet: %s is at round %d, behind this replica's %d; not syncing backwards", p, head.Round, mine)
	}
	theta0, vel, err := c.decode(head, data, span)
	if err != nil {
		return fmt.Errorf("replicanet: checkpoint from %s: %w", p, err)
	}
	if err := c.vouch(p, span, head.Round, head.Hash); err != nil {
		return err
	}
	if err := rep.Plausible(head.Round, theta0); err != nil {
		return err
	}
	if err := rep.Adopt(head.Round, theta0, vel, steps); err != nil {
		return err
	}
	logger().Info("synced span from a replica", "from", p, "round", head.Round, "hash", fmt.Sprintf("%.12s", head.Hash))
	return nil
}

// MaybePush offers this node's checkpoint to a replica of its span that gossips an older round
// (at most every PushInterval per replica), so a straggler need not notice it is behind.
func (c *Catchup) MaybePush(p peer.ID, r diloco.Report) {
	span := c.Span()
	if r.First != span.First || r.Last != span.Last || p == c.Host.ID() {
		return
	}
	c.pushMu.Lock()
	due := r.Round < c.round() && time.Since(c.pushedAt[p]) > PushInterval
	if due {
		if c.pushedAt == nil {
			c.pushedAt = map[peer.ID]time.Time{}
		}
		c.pushedAt[p] = time.Now()
	}
	c.pushMu.Unlock()
	if !due {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		req := p2p.CheckpointRequest{Model: c.Model.Name, First: span.First, Last: span.Last}
		head, data, err := c.Serve(c.Host.ID(), req)
		if err == nil {
			ctx, cancel := context.WithTimeout(c.Ctx, 2*time.Minute)
			err = c.Host.PutCheckpoint(ctx, p, p2p.CheckpointPut{CheckpointRequest: req, CheckpointHead: head}, data)
			cancel()
		}
		if err != nil {
			logger().Debug("checkpoint not pushed", "peer", p, "err", err)
			return
		}
		logger().Info("pushed the span's checkpoint to a replica behind", "peer", p, "round", head.Round)
	}()
}

// Take answers /neuroshard/checkpoint/put/1.0.0: a checkpoint offered by a peer is taken
// only for this node's span, for a newer round, and with the hash most replicas gossip for
// that round; anything else is refused and changes nothing.
func (c *Catchup) Take(from peer.ID, put p2p.CheckpointPut, data []byte) error {
	if err := c.Admit(from, put); err != nil {
		return err
	}
	if !c.busy.CompareAndSwap(false, true) {
		return &p2p.RemoteError{Code: "BUSY", Message: "already catching up"}
	}
	defer c.busy.Store(false)
	if err := c.Adopt(from, put.CheckpointHead, data, c.Steps()); err != nil {
		return &p2p.RemoteError{Code: "REFUSED", Message: err.Error()}
	}
	c.Synced()
	return nil
}

// Admit checks an offered checkpoint's head before any of its data is read: the span, a
// newer round, the majority hash, and a size no larger than the span's weights can take.
func (c *Catchup) Admit(from peer.ID, put p2p.CheckpointPut) error {
	span := c.Span()
	if put.Model != c.Model.Name || (layers.Span{First: put.First, Last: put.Last}) != span {
		return &p2p.RemoteError{Code: "NOT_HELD", Message: "this node does not hold that span"}
	}
	if mine := c.round(); put.Round <= mine {
		return &p2p.RemoteError{Code: "NOT_NEWER", Message: fmt.Sprintf("this replica is at round %d already", mine)}
	}
	if err := c.vouch(from, span, put.Round, put.Hash); err != nil {
		return &p2p.RemoteError{Code: "UNCORROBORATED", Message: err.Error()}
	}
	if limit := c.Model.MaxCheckpointBytes(span); put.Size > limit {
		return &p2p.RemoteError{Code: "TOO_LARGE", Message: fmt.Sprintf("a checkpoint of layers %s is at most %d bytes, %d offered", span, limit, put.Size)}
	}
	return nil
}

// FetchSpan fetches the checkpoint of a span this node does not hold yet (it is moving there)
// from the given holders of exactly that span, in turn: the request shows a record naming
// the span, signed now (a holder serves its checkpoint to holders only), and a checkpoint is
// taken only if it hashes to what its server announced and the span's holders' gossip backs
// that round and hash (diloco.Vouch, as for a catch-up) or it is the initial weights (of
// seed) at round 0. It returns theta_0, the round and the outer momentum.
func (c *Catchup) FetchSpan(ctx context.Context, span layers.Span, holders []peer.ID, seed uint64) (*layers.Params, int64, [][]float32, error) {
	rec := c.Host.Record()
	rec.Model, rec.First, rec.Last = c.Model.Name, span.First, span.Last
	rec.UsedBytes = c.Model.SpanMemoryBytes(span)
	signed, err := c.Host.SignRecord(rec)
	if err != nil {
		return nil, 0, nil, err
	}
	req := p2p.CheckpointRequest{Model: c.Model.Name, First: span.First, Last: span.Last, Record: signed.Encode()}
	ids := make([]string, len(holders))
	for i, h := range holders {
		ids[i] = h.String()
	}
	var errs []error
	for _, p := range holders {
		theta0, round, vel, err := c.fetchFrom(ctx, p, span, req, ids, seed)
		if err == nil {
			return theta0, round, vel, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", p, err))
	}
	if len(errs) == 0 {
		return nil, 0, nil, fmt.Errorf("replicanet: no holder of %s to fetch it from", span)
	}
	return nil, 0, nil, errors.Join(errs...)
}

func (c *Catchup) fetchFrom(ctx context.Context, p peer.ID, span layers.Span, req p2p.CheckpointRequest, holders []string, seed uint64) (*layers.Params, int64, [][]float32, error) {
	head, data, err := c.Host.GetCheckpoint(ctx, p, req)
	if err != nil {
		return nil, 0, nil, err
	}
	theta0, vel, err := c.decode(head, data, span)
	if err != nil {
		return nil, 0, nil, err
	}
	if err := diloco.Vouch(c.Reports.Fresh(), holders, span.First, span.Last, head.Round, head.Hash, p.String(), nil); err != nil {
		if head.Round != 0 || head.Hash != c.Model.InitParams(span, seed).Hash() {
			return nil, 0, nil, err
		}
	}
	return theta0, head.Round, vel, nil
}

// decode reads a served checkpoint of span: theta_0, which must hash to what its server
// announced, and the outer momentum.
func (c *Catchup) decode(head p2p.CheckpointHead, data []byte, span layers.Span) (*layers.Params, [][]float32, error) {
	_, theta0, err := layers.DecodeParams(bytes.NewReader(data), c.Model, span)
	if err != nil {
		return nil, nil, err
	}
	if theta0.Hash() != head.Hash {
		return nil, nil, fmt.Errorf("it hashes to %.12s, its server announced %.12s", theta0.Hash(), head.Hash)
	}
	_, vel, err := layers.DecodeParams(bytes.NewReader(head.Extra), c.Model, span)
	if err != nil {
		return nil, nil, err
	}
	return theta0, vel.Values, nil
}

// WeightsFor is what a node moving to span takes, with its round and outer momentum: the
// checkpoint of one of holders (of exactly span: FetchSpan) when there are any; else the
// initial weights (of seed) when this node has listened to the training gossip long enough
// (listened) and no fresh report shows a replica of any of span's layers past round 0 or
// with inner steps. Otherwise it refuses: the span's weights cannot be known.
func (c *Catchup) WeightsFor(ctx context.Context, span layers.Span, holders []peer.ID, seed uint64, listened bool) (*layers.Params, int64, [][]float32, error) {
	if len(holders) > 0 {
		return c.FetchSpan(ctx, span, holders, seed)
	}
	if !listened {
		return nil, 0, nil, fmt.Errorf("replicanet: no holder of exactly %s, and too new to the training gossip to know whether its layers are trained", span)
	}
	if c.Trained(span) {
		return nil, 0, nil, fmt.Errorf("replicanet: no holder of exactly %s to take its trained weights from", span)
	}
	return c.Model.InitParams(span, seed), 0, nil, nil
}

// Trained tells whether a fresh report shows a replica of any of span's layers past round 0
// or with inner steps.
func (c *Catchup) Trained(span layers.Span) bool {
	for _, r := range c.Reports.Fresh() {
		if r.Model == c.Model.Name && r.First <= span.Last && span.First <= r.Last && (r.Round > 0 || r.Steps > 0) {
			return true
		}
	}
	return false
}
