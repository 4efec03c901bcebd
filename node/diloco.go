package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/p2p"
)

// syncState is the node's DiLoCo state for its span: theta_0 (the weights every replica
// agreed on at the end of the last round), the outer optimizer, and the round in progress
// when this node aggregates it.
type syncState struct {
	mu         sync.Mutex
	theta0     *layers.Params
	outer      *diloco.Outer
	round      int64 // rounds completed
	stepsAtEnd int64 // inner steps taken when the last round ended
	collect    *collection
	ok, failed int64                // rounds that synced, and rounds that failed
	exclusions []apitypes.Exclusion // the latest replicas left out of rounds, oldest first
	sentBytes  int64                // pseudo-gradient bytes this node sent (contributions and results)
	pushedAt   map[peer.ID]time.Time
	lastUsed   []string // the replicas whose contributions the last round used
	shared     int64    // rounds that averaged more than one replica
}

// collection gathers a round's contributions on its aggregator.
type collection struct {
	round    int64
	base     string
	expected []string
	got      map[string]diloco.Contribution
	rejected map[string]string // contributions refused on arrival (malformed, NaN), flagged in the result
	losses   map[string]float32
	busy     bool          // the aggregator is collecting or has aggregated this round
	done     chan struct{} // closed (once) when the round is aggregated
	res      p2p.ExchangeResult
	agg      *layers.Params
	blobs    map[string]signedBlob // the signed contributions behind got
	result   []byte                // the contributions' blobs as sent back to every replica
	err      error
}

func (n *Node) initSync(st *layers.Stage, round int64) {
	n.sync.mu.Lock()
	defer n.sync.mu.Unlock()
	n.sync.theta0 = st.Params()
	n.sync.outer = n.newOuter()
	n.sync.round = round
}

// shortRound is the H at and below which the outer step's momentum was measured to hurt
// (README, Performance).
const shortRound = 50

// newOuter is the outer optimizer with the node's current settings.
func (n *Node) newOuter() *diloco.Outer {
	lr, mom := n.outerSettings()
	return diloco.NewOuter(lr, mom)
}

// outerSettings are the outer step's learning rate and momentum as the node's settings say
// now, in the float32 the step computes with.
func (n *Node) outerSettings() (lr, momentum float32) {
	t := n.settings.Get().Training
	return float32(t.OuterLR), float32(t.OuterMomentum)
}

// replicas lists the peers holding exactly the node's span (itself included), sorted by ID.
func (n *Node) replicas(ctx context.Context) []peer.ID {
	span := n.Span()
	var out []peer.ID
	for p, spans := range n.pipe.Holdings(ctx) {
		if slices.Contains(spans, span) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// aggregators lists, in the order to try them, the replicas that may aggregate this node's
// round: those not known from gossip to be behind it, lowest peer ID first. A replica that
// just joined (round 0) is never asked by replicas further along, so it cannot roll them back.
func (n *Node) aggregators(ctx context.Context, round int64) []peer.ID {
	reps := n.replicas(ctx)
	n.sync.mu.Lock()
	lastUsed := n.sync.lastUsed
	n.sync.mu.Unlock()
	n.reports.mu.Lock()
	defer n.reports.mu.Unlock()
	var out []peer.ID
	for _, p := range reps {
		ra, known := n.reports.by[p]
		if p != n.host.ID() && known && time.Since(ra.at) < reportTTL && ra.r.Round < round && !finishing(p, ra, round, lastUsed) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// roundLoop runs a DiLoCo round each time the stage has taken H inner steps since the last.
func (n *Node) roundLoop() {
	defer n.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if n.ctx.Err() != nil { // select picks at random when both are ready
			return
		}
		h := int64(n.settings.Get().Training.DiLoCoSteps)
		n.train.mu.Lock()
		steps := n.train.innerSteps
		n.train.mu.Unlock()
		n.sync.mu.Lock()
		due := steps-n.sync.stepsAtEnd >= h
		n.sync.mu.Unlock()
		if !due {
			n.catchUp()
			continue
		}
		if err := n.runRound(n.ctx, steps); err != nil && n.ctx.Err() == nil {
			logger().Warn("DiLoCo round failed", "err", err)
			n.sync.mu.Lock()
			n.sync.failed++
			n.sync.stepsAtEnd = steps // try again after H more steps
			n.sync.mu.Unlock()
		}
	}
}

// finishing tells whether p, whose gossip says it is one round behind round, took part in the
// previous round (lastUsed): then it is still checking and applying that round's result and
// is about to be at round. With rounds shorter than that, treating it as behind made the
// replicas of a span run alternately alone instead of together.
func finishing(p peer.ID, ra reportAt, round int64, lastUsed []string) bool {
	return ra.r.Round == round-1 && slices.Contains(lastUsed, p.String())
}

// roundPeers is who the aggregator of round waits for: the replicas not known from gossip to
// be at another round, except one finishing the previous round. The caller holds n.sync.mu.
func (n *Node) roundPeers(reps []peer.ID, round int64) []string {
	n.reports.mu.Lock()
	defer n.reports.mu.Unlock()
	var out []string
	for _, p := range reps {
		ra, ok := n.reports.by[p]
		if p != n.host.ID() && ok && time.Since(ra.at) < reportTTL && ra.r.Round != round && !finishing(p, ra, round, n.sync.lastUsed) {
			continue
		}
		out = append(out, p.String())
	}
	return out
}

// encodePG compresses a pseudo-gradient tensor by tensor: uint32 length, bytes.
func encodePG(c diloco.Compression, p *layers.Params) ([]byte, error) {
	var out []byte
	for _, v := range p.Values {
		b, err := diloco.Compress(c, v)
		if err != nil {
			return nil, err
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	return out, nil
}

func decodePG(c diloco.Compression, specs []layers.ParamSpec, b []byte) (*layers.Params, error) {
	p := &layers.Params{Specs: specs, Values: make([][]float32, len(specs))}
	for i, s := range specs {
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: pseudo-gradient truncated", diloco.ErrRejected)
		}
		n := int(binary.LittleEndian.Uint32(b))
		b = b[4:]
		if n > len(b) {
			return nil, fmt.Errorf("%w: pseudo-gradient truncated", diloco.ErrRejected)
		}
		v, err := diloco.Decompress(c, b[:n], s.Size())
		if err != nil {
			return nil, err
		}
		p.Values[i], b = v, b[n:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes", diloco.ErrRejected)
	}
	return p, nil
}

// runRound computes this replica's pseudo-gradient and takes part in the round, as its
// aggregator or as a contributor, then applies the agreed outer step.
func (n *Node) runRound(ctx context.Context, steps int64) error {
	if from, ahead := n.newerReplica(); ahead {
		// Behind the others: this round's work is moot; take theirs.
		n.catchUpFrom(from)
		n.sync.mu.Lock()
		n.sync.stepsAtEnd = steps
		n.sync.mu.Unlock()
		return nil
	}
	st := n.Stage()
	lr, mom := n.outerSettings()
	n.sync.mu.Lock()
	theta0, round := n.sync.theta0.Clone(), n.sync.round
	// The round's outer step uses the settings of its start, whatever a PATCH does meanwhile.
	n.sync.outer.LR, n.sync.outer.Momentum = lr, mom
	n.sync.mu.Unlock()
	base := theta0.Hash()
	pg, err := diloco.PseudoGradient(theta0, st.Params())
	if err != nil {
		return err
	}
	if n.tamper != nil {
		n.tamper(pg)
	}
	loss := n.recentLoss()
	reps := n.aggregators(ctx, round)
	comp := n.settings.Get().Training.Codec()
	blob, err := encodePG(comp, pg)
	if err != nil {
		return err
	}
	sig, err := n.signContribution(round, base, blob)
	if err != nil {
		return err
	}
	mine := signedBlob{comp: comp, sig: sig, blob: blob}
	for _, agg := range reps {
		if agg == n.host.ID() {
			res, aggPG, err := n.aggregate(ctx, round, base, mine, loss, reps)
			if err != nil {
				return err
			}
			return n.published(n.finishRound(res, aggPG, base, steps))
		}
		n.sync.mu.Lock()
		n.sync.sentBytes += int64(len(blob))
		n.sync.mu.Unlock()
		req := p2p.ExchangeRequest{Model: n.model.Name, First: st.Span().First, Last: st.Span().Last, Round: round,
			BaseHash: base, Compression: byte(comp), Loss: loss, Sig: sig, OuterLR: lr, OuterMomentum: mom}
		ectx, cancel := context.WithTimeout(ctx, 2*n.cfg.RoundTimeout+30*time.Second)
		res, out, err := n.host.Exchange(ectx, agg, req, blob)
		cancel()
		if err != nil {
			logger().Warn("aggregator unreachable; trying the next replica", "aggregator", agg, "err", err)
			continue
		}
		if res.Status == "resync" {
			logger().Info("weights behind the round; fetching the span's checkpoint", "from", agg, "reason", res.Reason)
			return n.resyncFrom(ctx, agg, steps)
		}
		if res.Status != "ok" {
			return fmt.Errorf("node: excluded from round %d: %s", round, res.Reason)
		}
		aggPG, err := n.verifyRound(res, out, round, base, theta0.Specs, blob)
		if err != nil {
			return fmt.Errorf("node: round %d from %s does not verify: %w", round, agg, err)
		}
		return n.published(n.finishRound(res, aggPG, base, steps))
	}
	return errors.New("node: no aggregator answered")
}

// finishRound applies the aggregated pseudo-gradient to theta_0 with the outer step, checks
// the result against the aggregator's, and makes it the stage's weights. base is the hash of
// the theta_0 the round started from: if a catch-up replaced theta_0 meanwhile, the round's
// aggregate no longer applies to it.
func (n *Node) finishRound(res p2p.ExchangeResult, aggPG *layers.Params, base string, steps int64) error {
	n.sync.mu.Lock()
	defer n.sync.mu.Unlock()
	if err := n.sameRound(res.Round, base); err != nil {
		return err
	}
	if err := n.sync.outer.Step(n.sync.theta0, aggPG); err != nil {
		return err
	}
	if h := n.sync.theta0.Hash(); h != res.NewHash {
		return fmt.Errorf("node: after round %d my weights hash to %s, the aggregator's to %s", res.Round, h[:12], res.NewHash[:min(12, len(res.NewHash))])
	}
	if err := n.Stage().SetParams(n.sync.theta0); err != nil {
		return err
	}
	n.sync.round = res.Round + 1
	n.sync.stepsAtEnd = steps
	n.sync.ok++
	n.noteExclusions(res.Round, res.Excluded)
	n.sync.lastUsed = res.Used
	if len(res.Used) > 1 {
		n.sync.shared++
	}
	meta := layers.CheckpointMeta{Model: n.model.Name, Span: n.Span(), Step: steps, Round: n.sync.round}
	if err := layers.SaveCheckpoint(n.checkpointPath(n.Span()), meta, n.sync.theta0); err != nil {
		logger().Warn("could not save the checkpoint", "err", err)
	}
	logger().Info("DiLoCo round done", "round", res.Round, "replicas", len(res.Used), "excluded", len(res.Excluded), "hash", res.NewHash[:12])
	return nil
}

// aggregate runs a round as its aggregator: it adds its own contribution, waits for every
// replica's or the round deadline, aggregates, and releases the waiting contributors.
func (n *Node) aggregate(ctx context.Context, round int64, base string, mine signedBlob, loss float32, reps []peer.ID) (p2p.ExchangeResult, *layers.Params, error) {
	// Its own contribution enters as the others see it: decoded from the bytes it shows them.
	pg, err := decodePG(mine.comp, n.model.ParamSpecs(n.Span()), mine.blob)
	if err != nil {
		return p2p.ExchangeResult{}, nil, err
	}
	c := n.collection(round, base)
	first := n.Span().First // before n.sync.mu: Span takes n.mu
	n.sync.mu.Lock()
	if c.busy {
		// This round was aggregated already (a retry after its outer step failed here): the
		// contributors were answered with that result, so it stands. Waiting is bounded: a
		// collection that never closes must not stop this node's rounds for good.
		n.sync.mu.Unlock()
		select {
		case <-c.done:
			return c.res, c.agg, c.err
		case <-ctx.Done():
			return p2p.ExchangeResult{}, nil, ctx.Err()
		case <-time.After(2 * n.cfg.RoundTimeout):
			logger().Warn("round's earlier aggregation never finished; dropping it", "round", round)
			n.sync.mu.Lock()
			defer n.sync.mu.Unlock()
			return n.failRound(c, fmt.Errorf("node: round %d: an earlier aggregation of it never finished", round))
		}
	}
	c.busy = true
	c.got[n.host.ID().String()] = diloco.Contribution{Peer: n.host.ID().String(), Grad: pg}
	c.blobs[n.host.ID().String()] = mine
	c.losses[n.host.ID().String()] = loss
	c.expected = n.roundPeers(reps, round)
	n.sync.mu.Unlock()
	deadline := time.NewTimer(n.cfg.RoundTimeout)
	defer deadline.Stop()
	for !n.collected(c) {
		select {
		case <-ctx.Done():
			n.sync.mu.Lock()
			defer n.sync.mu.Unlock()
			return n.failRound(c, ctx.Err()) // releases the contributors waiting on it
		case <-deadline.C:
			logger().Warn("round deadline passed; aggregating without the late replicas", "round", round)
			goto aggregate
		case <-time.After(20 * time.Millisecond):
		}
	}
aggregate:
	n.sync.mu.Lock()
	defer n.sync.mu.Unlock()
	if err := n.sameRound(round, base); err != nil {
		return n.failRound(c, err)
	}
	var cs []diloco.Contribution
	for _, x := range c.got {
		cs = append(cs, x)
	}
	r, err := diloco.DefaultAggregator().Aggregate(n.sync.theta0.Specs, cs)
	if err != nil {
		return n.failRound(c, err)
	}
	// Every replica recomputes this aggregate from the same signed contributions.
	shown := map[string]signedBlob{}
	for p := range c.got {
		shown[p] = c.blobs[p]
	}
	var refs []p2p.ContributionRef
	refs, c.result = resultBlobs(shown)
	after := n.sync.theta0.Clone()
	tmp := diloco.NewOuter(n.sync.outer.LR, n.sync.outer.Momentum)
	tmp.SetVelocity(n.sync.outer.Velocity())
	if err := tmp.Step(after, r.Grad); err != nil {
		return n.failRound(c, err)
	}
	for p, why := range c.rejected {
		if _, ok := c.got[p]; !ok {
			r.Excluded[p] = why
		}
	}
	for p, why := range r.Excluded {
		logger().Warn("replica excluded from the round", "round", round, "peer", p, "reason", why)
	}
	c.res = p2p.ExchangeResult{Round: round, Status: "ok", Used: r.Used, Excluded: r.Excluded, NewHash: after.Hash(), Contributions: refs}
	for _, p := range r.Used { // the aggregator consumed each contribution it used
		if id, err := peer.Decode(p); err == nil {
			n.lsync.SendReceipt(id, ledger.ProofRound, first, 1)
		}
	}
	c.agg = r.Grad
	n.closeCollection(c)
	return c.res, c.agg, nil
}

// maxExclusions is how many exclusions the node remembers for /api/training/global: rounds
// can follow each other within a second, so the last round's alone would hide most of them.
const maxExclusions = 32

// noteExclusions records the replicas a round left out; the caller holds n.sync.mu.
func (n *Node) noteExclusions(round int64, excluded map[string]string) {
	peers := slices.Sorted(maps.Keys(excluded))
	for _, p := range peers {
		n.sync.exclusions = append(n.sync.exclusions, apitypes.Exclusion{Round: round, Peer: p, Reason: excluded[p]})
	}
	if len(n.sync.exclusions) > maxExclusions {
		n.sync.exclusions = slices.Clone(n.sync.exclusions[len(n.sync.exclusions)-maxExclusions:])
	}
}

// recentExclusions lists the remembered exclusions, newest first.
func (n *Node) recentExclusions() []apitypes.Exclusion {
	n.sync.mu.Lock()
	defer n.sync.mu.Unlock()
	out := slices.Clone(n.sync.exclusions)
	slices.Reverse(out)
	return out
}

// sameRound checks that theta_0 is still the one round started from: a catch-up (a checkpoint
// fetched from a replica ahead, or pushed by one) may have replaced it while the round ran.
// The caller holds n.sync.mu.
func (n *Node) sameRound(round int64, base string) error {
	if n.sync.round != round || n.sync.theta0.Hash() != base {
		return fmt.Errorf("node: round %d: theta_0 changed while the round ran (caught up to round %d meanwhile)", round, n.sync.round)
	}
	return nil
}

// failRound ends a collection with an error, releasing the waiting contributors; the caller
// holds n.sync.mu.
func (n *Node) failRound(c *collection, err error) (p2p.ExchangeResult, *layers.Params, error) {
	c.err = err
	n.closeCollection(c)
	return p2p.ExchangeResult{}, nil, err
}

// closeCollection releases c's waiting contributors (once) and forgets it, unless a newer
// round's collection took its place meanwhile; the caller holds n.sync.mu.
func (n *Node) closeCollection(c *collection) {
	select {
	case <-c.done:
	default:
		close(c.done)
	}
	if n.sync.collect == c {
		n.sync.collect = nil
	}
}

func (n *Node) collected(c *collection) bool {
	n.sync.mu.Lock()
	defer n.sync.mu.Unlock()
	for _, p := range c.expected {
		_, got := c.got[p]
		_, refused := c.rejected[p]
		if !got && !refused && n.host.Libp2p().Network().Connectedness(mustDecode(p)) == network.Connected {
			return false
		}
	}
	return true
}

func mustDecode(s string) peer.ID {
	id, _ := peer.Decode(s)
	return id
}

// collection returns the round's collection, making it on first use.
func (n *Node) collection(round int64, base string) *collection {
	n.sync.mu.Lock()
	defer n.sync.mu.Unlock()
	if c := n.sync.collect; c != nil && c.round == round && c.base == base {
		return c
	}
	c := &collection{round: round, base: base, got: map[string]diloco.Contribution{}, rejected: map[string]string{}, losses: map[string]float32{},
		blobs: map[string]signedBlob{}, done: make(chan struct{})}
	n.sync.collect = c
	return c
}

// serveExchange receives a replica's contribution when this node aggregates the round.
func (n *Node) serveExchange(ctx context.Context, from peer.ID, req p2p.ExchangeRequest, blob []byte) (p2p.ExchangeResult, []byte, error) {
	st := n.Stage()
	if st == nil || req.Model != n.model.Name || (layers.Span{First: req.First, Last: req.Last}) != st.Span() {
		return p2p.ExchangeResult{}, nil, &p2p.RemoteError{Code: "NOT_HELD", Message: "this node does not hold that span"}
	}
	n.sync.mu.Lock()
	round, base := n.sync.round, n.sync.theta0.Hash()
	n.sync.mu.Unlock()
	if req.Round > round {
		// This node is the one behind: it catches up, and the contributor asks another.
		go n.catchUpFrom(from)
		return p2p.ExchangeResult{}, nil, &p2p.RemoteError{Code: "BEHIND", Message: fmt.Sprintf("this replica is at round %d, behind %d", round, req.Round)}
	}
	if req.Round != round || req.BaseHash != base {
		// Answered for this round: the aggregator stops waiting for it.
		c := n.collection(round, base)
		n.sync.mu.Lock()
		if _, ok := c.got[from.String()]; !ok {
			c.rejected[from.String()] = "behind: resyncing"
		}
		n.sync.mu.Unlock()
		return p2p.ExchangeResult{Round: round, Status: "resync",
			Reason: fmt.Sprintf("round %d from weights %s; this round is %d from %s", req.Round, short12(req.BaseHash), round, short12(base))}, nil, nil
	}
	c := n.collection(round, base)
	pg, err := decodePG(diloco.Compression(req.Compression), n.model.ParamSpecs(st.Span()), blob)
	if lr, mom := n.outerSettings(); err == nil && (req.OuterLR != lr || req.OuterMomentum != mom) {
		err = fmt.Errorf("%w: made for an outer step of lr %g, momentum %g; this span's replicas use lr %g, momentum %g",
			diloco.ErrRejected, req.OuterLR, req.OuterMomentum, lr, mom)
	}
	if err == nil {
		err = checkContribution(from, round, base, blob, req.Sig)
	}
	if err != nil {
		n.sync.mu.Lock()
		c.rejected[from.String()] = err.Error()
		n.sync.mu.Unlock()
		logger().Warn("replica's pseudo-gradient refused", "round", round, "peer", from, "reason", err)
		return p2p.ExchangeResult{Round: round, Status: "excluded", Reason: err.Error()}, nil, nil
	}
	n.sync.mu.Lock()
	c.got[from.String()] = diloco.Contribution{Peer: from.String(), Grad: pg}
	c.blobs[from.String()] = signedBlob{comp: diloco.Compression(req.Compression), sig: req.Sig, blob: blob}
	c.losses[from.String()] = req.Loss
	n.sync.mu.Unlock()
	select {
	case <-c.done:
	case <-ctx.Done():
		return p2p.ExchangeResult{}, nil, ctx.Err()
	}
	if c.err != nil {
		return p2p.ExchangeResult{}, nil, c.err
	}
	res := c.res
	if why, out := res.Excluded[from.String()]; out {
		res.Status, res.Reason = "resync", "excluded: "+why
		return res, nil, nil
	}
	if !slices.Contains(res.Used, from.String()) {
		res.Status, res.Reason = "resync", "arrived after the round closed"
		return res, nil, nil
	}
	n.sync.mu.Lock()
	n.sync.sentBytes += int64(len(c.result))
	tamper := n.tamperResult
	n.sync.mu.Unlock()
	if tamper != nil {
		return res, tamper(slices.Clone(c.result)), nil
	}
	return res, c.result, nil
}

// published gossips the node's report after a round that succeeded.
func (n *Node) published(err error) error {
	if err == nil {
		n.publishTraining()
	}
	return err
}

func short12(h string) string { return h[:min(12, len(h))] }

// recentLoss is the mean of the last few losses the stage saw.
func (n *Node) recentLoss() float32 {
	n.train.mu.Lock()
	defer n.train.mu.Unlock()
	ls := n.train.losses
	if len(ls) == 0 {
		return 0
	}
	k := min(len(ls), 10)
	return float32(meanLoss(ls[len(ls)-k:]))
}

func meanLoss(ls []float32) float64 {
	s := 0.0
	for _, l := range ls {
		s += float64(l)
	}
	return s / float64(len(ls))
}
