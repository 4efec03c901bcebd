package node

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// Catching up: a replica that is behind its span's round (it joined late, restarted behind,
// or missed a round) fetches theta_0, the round and the outer momentum from a replica that is
// ahead, over the checkpoint protocol.

// newerReplica finds a newer round of the span that a quorum of its other holders report
// with one weights hash: more than half of the holders the coverage view knows (at least
// one) name the same round and hash, and the round is the newest such. It returns one of
// them to fetch the checkpoint from. A single report, however far ahead, moves nothing: a
// liar (or a peer holding no layer) cannot make the node drop its rounds.
func (n *Node) newerReplica() (peer.ID, bool) {
	span := n.Span()
	mine := n.roundState().Round
	ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
	holders := map[peer.ID]bool{}
	for _, p := range n.replicas(ctx) {
		if p != n.host.ID() {
			holders[p] = true
		}
	}
	cancel()
	type claim struct {
		round int64
		hash  string
	}
	votes := map[claim][]peer.ID{}
	n.reports.mu.Lock()
	for p, ra := range n.reports.by {
		r := ra.r
		if holders[p] && r.First == span.First && r.Last == span.Last && r.Round > mine && time.Since(ra.at) < reportTTL {
			c := claim{r.Round, r.Hash}
			votes[c] = append(votes[c], p)
		}
	}
	n.reports.mu.Unlock()
	var best claim
	var from []peer.ID
	for c, ps := range votes {
		if 2*len(ps) > len(holders) && (from == nil || c.round > best.round) {
			best, from = c, ps
		}
	}
	for _, p := range from {
		if n.backoff.ready(p) {
			return p, true
		}
	}
	return "", false
}

// backoff spaces out catch-ups from a peer that failed: 1 s after the first failure, doubling
// to at most two minutes, reset by a success.
type backoff struct {
	mu    sync.Mutex
	until map[peer.ID]time.Time
	wait  map[peer.ID]time.Duration
}

func (b *backoff) ready(p peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return time.Now().After(b.until[p])
}

func (b *backoff) failed(p peer.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.until == nil {
		b.until, b.wait = map[peer.ID]time.Time{}, map[peer.ID]time.Duration{}
	}
	w := min(max(2*b.wait[p], time.Second), 2*time.Minute)
	b.wait[p], b.until[p] = w, time.Now().Add(w)
}

func (b *backoff) succeeded(p peer.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.until, p)
	delete(b.wait, p)
}

// majorityHash is the weights hash most replicas of the span gossip for a round (each
// replica's latest fresh report is one vote, the checkpoint's sender included); ok is false
// with no vote or a tie. A joiner trusts a checkpoint only if its hash is the majority's, so
// one lying replica cannot hand it bad weights.
func (n *Node) majorityHash(span layers.Span, round int64) (hash string, votes int, ok bool) {
	var rs []diloco.Report
	n.reports.mu.Lock()
	for p, ra := range n.reports.by {
		if p != n.host.ID() && time.Since(ra.at) < reportTTL {
			rs = append(rs, ra.r)
		}
	}
	n.reports.mu.Unlock()
	return diloco.Majority(rs, span.First, span.Last, round)
}

// catchUp resyncs from a replica that gossips a newer round of the node's span: the node
// joined late, restarted behind, or missed a round.
func (n *Node) catchUp() {
	if from, ok := n.newerReplica(); ok {
		n.catchUpFrom(from)
	}
}

// catchUpFrom resyncs from one replica (serialised: a node catches up once at a time).
// It reports whether the node took the peer's checkpoint.
func (n *Node) catchUpFrom(from peer.ID) bool {
	if n.noPull.Load() || !n.catchingUp.CompareAndSwap(false, true) {
		return false
	}
	defer n.catchingUp.Store(false)
	n.train.mu.Lock()
	steps := n.train.innerSteps
	n.train.mu.Unlock()
	if err := n.resyncFrom(n.ctx, from, steps); err != nil {
		n.backoff.failed(from)
		logger().Warn("catching up failed", "from", from, "err", err)
		return false
	}
	n.backoff.succeeded(from)
	n.publishTraining()
	return true
}

// serveCheckpoint sends theta_0 of the span with the round and the outer momentum.
func (n *Node) serveCheckpoint(from peer.ID, req p2p.CheckpointRequest) (p2p.CheckpointHead, []byte, error) {
	st := n.Stage()
	if st == nil || req.Model != n.model.Name || (layers.Span{First: req.First, Last: req.Last}) != st.Span() {
		return p2p.CheckpointHead{}, nil, &p2p.RemoteError{Code: "NOT_HELD", Message: "this node does not hold that span"}
	}
	if n.replica == nil {
		return p2p.CheckpointHead{}, nil, &p2p.RemoteError{Code: "NOT_HELD", Message: "this node does not hold that span yet"}
	}
	round, theta0, velocity := n.replica.Snapshot()
	vel := &layers.Params{Specs: theta0.Specs, Values: velocity}
	if len(vel.Values) == 0 {
		vel = n.model.InitParams(st.Span(), 0)
		for _, v := range vel.Values {
			clear(v)
		}
	}
	var w, m bytes.Buffer
	meta := layers.CheckpointMeta{Model: n.model.Name, Span: st.Span(), Round: round}
	if err := layers.EncodeParams(&w, meta, theta0); err != nil {
		return p2p.CheckpointHead{}, nil, err
	}
	if err := layers.EncodeParams(&m, meta, vel); err != nil {
		return p2p.CheckpointHead{}, nil, err
	}
	return p2p.CheckpointHead{Hash: theta0.Hash(), Round: round, Extra: m.Bytes()}, w.Bytes(), nil
}

// resyncFrom replaces theta_0, the momentum and the stage's weights with a replica's.
func (n *Node) resyncFrom(ctx context.Context, p peer.ID, steps int64) error {
	span := n.Span()
	head, data, err := n.host.GetCheckpoint(ctx, p, p2p.CheckpointRequest{Model: n.model.Name, First: span.First, Last: span.Last})
	if err != nil {
		return err
	}
	return n.adoptCheckpoint(p, head, data, steps)
}

// adoptCheckpoint checks a span checkpoint (newer round, content hash, the replicas' majority
// hash) and makes it theta_0, the outer momentum and the stage's weights.
func (n *Node) adoptCheckpoint(p peer.ID, head p2p.CheckpointHead, data []byte, steps int64) error {
	span := n.Span()
	mine := n.roundState().Round
	if head.Round < mine {
		return fmt.Errorf("node: %s is at round %d, behind this replica's %d; not syncing backwards", p, head.Round, mine)
	}
	_, theta0, err := layers.DecodeParams(bytes.NewReader(data), n.model, span)
	if err != nil {
		return err
	}
	if theta0.Hash() != head.Hash {
		return fmt.Errorf("node: checkpoint from %s hashes to %s, it announced %s", p, short12(theta0.Hash()), short12(head.Hash))
	}
	// Reports race the rounds (a replica may gossip the next round while it serves this one),
	// so a round no majority has reported yet is taken from the peer that serves it; one whose
	// hash a majority contradicts is refused.
	if want, votes, ok := n.majorityHash(span, head.Round); ok && want != head.Hash {
		return fmt.Errorf("node: checkpoint from %s (round %d, %s) disagrees with %d replicas gossiping %s", p, head.Round, short12(head.Hash), votes, short12(want))
	}
	_, vel, err := layers.DecodeParams(bytes.NewReader(head.Extra), n.model, span)
	if err != nil {
		return err
	}
	if err := n.replica.Adopt(head.Round, theta0, vel.Values, steps); err != nil {
		return err
	}
	logger().Info("synced span from a replica", "from", p, "round", head.Round, "hash", short12(head.Hash))
	return nil
}

// pushInterval bounds how often a replica offers its checkpoint to one straggler.
const pushInterval = 30 * time.Second

// maybePush offers this node's checkpoint to a replica of its span that gossips an older
// round (over /neuroshard/checkpoint/put/1.0.0), so a straggler need not notice it is behind.
func (n *Node) maybePush(p peer.ID, r TrainingReport) {
	span := n.Span()
	if r.First != span.First || r.Last != span.Last || p == n.host.ID() {
		return
	}
	mine := n.roundState().Round
	n.pushMu.Lock()
	due := r.Round < mine && time.Since(n.pushedAt[p]) > pushInterval
	if due {
		if n.pushedAt == nil {
			n.pushedAt = map[peer.ID]time.Time{}
		}
		n.pushedAt[p] = time.Now()
	}
	n.pushMu.Unlock()
	if !due {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		req := p2p.CheckpointRequest{Model: n.model.Name, First: span.First, Last: span.Last}
		head, data, err := n.serveCheckpoint(n.host.ID(), req)
		if err == nil {
			ctx, cancel := context.WithTimeout(n.ctx, 2*time.Minute)
			err = n.host.PutCheckpoint(ctx, p, p2p.CheckpointPut{CheckpointRequest: req, CheckpointHead: head}, data)
			cancel()
		}
		if err != nil {
			logger().Debug("checkpoint not pushed", "peer", p, "err", err)
			return
		}
		logger().Info("pushed the span's checkpoint to a replica behind", "peer", p, "round", head.Round)
	}()
}

// takeCheckpoint answers /neuroshard/checkpoint/put/1.0.0: a checkpoint offered by a peer is
// taken only for this node's span, for a newer round, and with the hash most replicas gossip
// for that round; anything else is refused and changes nothing.
func (n *Node) takeCheckpoint(from peer.ID, put p2p.CheckpointPut, data []byte) error {
	if err := n.admitCheckpoint(from, put); err != nil {
		return err
	}
	if !n.catchingUp.CompareAndSwap(false, true) {
		return &p2p.RemoteError{Code: "BUSY", Message: "already catching up"}
	}
	defer n.catchingUp.Store(false)
	n.train.mu.Lock()
	steps := n.train.innerSteps
	n.train.mu.Unlock()
	if err := n.adoptCheckpoint(from, put.CheckpointHead, data, steps); err != nil {
		return &p2p.RemoteError{Code: "REFUSED", Message: err.Error()}
	}
	n.publishTraining()
	return nil
}

// admitCheckpoint checks an offered checkpoint's head before any of its data is read: the
// span, a newer round, the majority hash, and a size no larger than the span's weights can take.
func (n *Node) admitCheckpoint(from peer.ID, put p2p.CheckpointPut) error {
	span := n.Span()
	if put.Model != n.model.Name || (layers.Span{First: put.First, Last: put.Last}) != span {
		return &p2p.RemoteError{Code: "NOT_HELD", Message: "this node does not hold that span"}
	}
	mine := n.roundState().Round
	if put.Round <= mine {
		return &p2p.RemoteError{Code: "NOT_NEWER", Message: fmt.Sprintf("this replica is at round %d already", mine)}
	}
	if want, _, ok := n.majorityHash(span, put.Round); !ok || want != put.Hash {
		return &p2p.RemoteError{Code: "UNCORROBORATED", Message: fmt.Sprintf("no majority of the span's replicas gossips %s for round %d", short12(put.Hash), put.Round)}
	}
	if limit := n.model.MaxCheckpointBytes(span); put.Size > limit {
		return &p2p.RemoteError{Code: "TOO_LARGE", Message: fmt.Sprintf("a checkpoint of layers %s is at most %d bytes, %d offered", span, limit, put.Size)}
	}
	return nil
}
