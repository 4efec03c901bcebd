package diloco

// The aggregator's side of a round: collecting the span's contributions, aggregating them, and
// answering each contributor (Accept) with the result.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/neuroshard/neuroshard/layers"
)

// collection gathers a round's contributions on its aggregator.
type collection struct {
	round    int64
	base     string
	expected []string
	got      map[string]Contribution
	rejected map[string]string // contributions refused on arrival (malformed, NaN), flagged in the result
	blobs    map[string]Submission
	busy     bool          // the aggregator is collecting or has aggregated this round
	arrived  chan struct{} // signalled (without blocking) on every arrival or refusal
	done     chan struct{} // closed (once) when the round is aggregated
	res      Outcome
	agg      *layers.Params
	result   []byte // the contributions' blobs as sent back to every replica
	err      error
}

func (c *collection) signal() {
	select {
	case c.arrived <- struct{}{}:
	default:
	}
}

// aggregate runs a round as its aggregator: it adds its own contribution, waits for every
// replica's or the round deadline, aggregates, and releases the waiting contributors.
func (r *Replica) aggregate(ctx context.Context, mine Submission, reps []string) (Outcome, *layers.Params, error) {
	// Its own contribution enters as the others see it: decoded from the bytes it shows them.
	pg, err := DecodePseudoGradient(mine.Compression, r.cfg.Specs, mine.Blob)
	if err != nil {
		return Outcome{}, nil, err
	}
	c := r.collection(mine.Round, mine.Base)
	r.mu.Lock()
	if c.busy {
		// This round was aggregated already (a retry after its outer step failed here): the
		// contributors were answered with that result, so it stands. Waiting is bounded: a
		// collection that never closes must not stop this replica's rounds for good.
		r.mu.Unlock()
		select {
		case <-c.done:
			return c.res, c.agg, c.err
		case <-ctx.Done():
			return Outcome{}, nil, ctx.Err()
		case <-time.After(2 * r.cfg.RoundTimeout):
			logger().Warn("round's earlier aggregation never finished; dropping it", "round", mine.Round)
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.failRound(c, fmt.Errorf("diloco: round %d: an earlier aggregation of it never finished", mine.Round))
		}
	}
	c.busy = true
	c.got[r.cfg.Self] = Contribution{Peer: r.cfg.Self, Grad: pg}
	c.blobs[r.cfg.Self] = mine
	r.mu.Unlock()
	expected := r.roundPeers(reps, mine.Round)
	r.mu.Lock()
	c.expected = expected
	r.mu.Unlock()
	wait := r.Deadline()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	recheck := time.NewTicker(connectedWait)
	defer recheck.Stop()
wait:
	for len(r.waitingFor(c)) > 0 {
		select {
		case <-ctx.Done():
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.failRound(c, ctx.Err()) // releases the contributors waiting on it
		case <-deadline.C:
			logger().Warn("round deadline passed; aggregating without the late replicas", "round", mine.Round, "waited", wait.Round(time.Millisecond), "late", r.waitingFor(c))
			break wait
		case <-c.arrived:
		case <-recheck.C:
		}
		// A catch-up that replaced theta_0 makes the round moot: it fails now, not at the
		// deadline (two replicas at short rounds kept stalling on it for the whole deadline).
		r.mu.Lock()
		moot := r.sameRound(mine.Round, mine.Base) != nil
		r.mu.Unlock()
		if moot {
			break wait
		}
		if lower := r.lowerAtRound(c, reps); lower != "" {
			// Views differ (a coverage lookup not done yet, a report not arrived): a replica
			// lower in the order stands at this round too and aggregates it. Two aggregators
			// would split the span into two rounds; this one hands the round over, and its
			// contributors and itself plan it again.
			r.mu.Lock()
			defer r.mu.Unlock()
			reason := fmt.Sprintf("%s, lower in the order, aggregates round %d", short(lower), mine.Round)
			c.res = Outcome{Round: mine.Round, Status: StatusReplan, Reason: reason}
			r.closeCollection(c)
			return Outcome{}, nil, fmt.Errorf("%w: %s", ErrReplan, reason)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.sameRound(mine.Round, mine.Base); err != nil {
		return r.failRound(c, err)
	}
	var cs []Contribution
	for _, x := range c.got {
		cs = append(cs, x)
	}
	res, err := DefaultAggregator().Aggregate(r.theta0.Specs, cs)
	if err != nil {
		return r.failRound(c, err)
	}
	// Every replica recomputes this aggregate from the same signed contributions.
	shown := map[string]Submission{}
	for p := range c.got {
		shown[p] = c.blobs[p]
	}
	var refs []Ref
	refs, c.result = resultBlobs(shown)
	after := r.theta0.Clone()
	tmp := NewOuter(r.outer.LR, r.outer.Momentum)
	tmp.SetVelocity(r.outer.Velocity())
	if err := tmp.Step(after, res.Grad); err != nil {
		return r.failRound(c, err)
	}
	for p, why := range c.rejected {
		if _, ok := c.got[p]; !ok {
			res.Excluded[p] = why
		}
	}
	for p, why := range res.Excluded {
		logger().Warn("replica excluded from the round", "round", mine.Round, "peer", p, "reason", why)
	}
	c.res = Outcome{Round: mine.Round, Status: StatusOK, Used: res.Used, Excluded: res.Excluded, NewHash: after.Hash(), Contributions: refs}
	c.agg = res.Grad
	r.closeCollection(c)
	return c.res, c.agg, nil
}

// failRound ends a collection with an error, releasing the waiting contributors; the caller
// holds r.mu.
func (r *Replica) failRound(c *collection, err error) (Outcome, *layers.Params, error) {
	c.err = err
	r.closeCollection(c)
	return Outcome{}, nil, err
}

// closeCollection releases c's waiting contributors (once) and forgets it, unless a newer
// round's collection took its place meanwhile; the caller holds r.mu.
func (r *Replica) closeCollection(c *collection) {
	select {
	case <-c.done:
	default:
		close(c.done)
	}
	if r.collect == c {
		r.collect = nil
	}
}

// lowerAtRound finds a replica that precedes this one in reps (the aggregators' order),
// stands at c's round, is connected, and has not contributed here: the round's rightful
// aggregator.
func (r *Replica) lowerAtRound(c *collection, reps []string) string {
	r.mu.Lock()
	var cand []string
	for _, p := range reps {
		if p == r.cfg.Self {
			break
		}
		_, got := c.got[p]
		_, refused := c.rejected[p]
		if !got && !refused {
			cand = append(cand, p)
		}
	}
	r.mu.Unlock()
	for _, p := range cand {
		if at, ok := r.cfg.Membership.Round(p); ok && at == c.round && r.cfg.Membership.Connected(p) {
			return p
		}
	}
	return ""
}

// waitingFor lists the expected replicas that have not answered and are still connected.
func (r *Replica) waitingFor(c *collection) []string {
	r.mu.Lock()
	var missing []string
	for _, p := range c.expected {
		_, got := c.got[p]
		_, refused := c.rejected[p]
		if !got && !refused {
			missing = append(missing, p)
		}
	}
	r.mu.Unlock()
	return slices.DeleteFunc(missing, func(p string) bool { return !r.cfg.Membership.Connected(p) })
}

// collection returns the round's collection, making it on first use.
func (r *Replica) collection(round int64, base string) *collection {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.collect; c != nil && c.round == round && c.base == base {
		return c
	}
	c := &collection{round: round, base: base, got: map[string]Contribution{}, rejected: map[string]string{},
		blobs: map[string]Submission{}, arrived: make(chan struct{}, 1), done: make(chan struct{})}
	r.collect = c
	return c
}

// Accept takes a replica's contribution when this replica aggregates the round, and waits for
// the round's outcome. ErrBehind: the contributor is at a newer round than this replica.
func (r *Replica) Accept(ctx context.Context, from string, s Submission) (Outcome, []byte, error) {
	r.mu.Lock()
	round, base := r.round, r.hash
	r.mu.Unlock()
	if s.Round > round {
		return Outcome{}, nil, fmt.Errorf("%w: at round %d, the contribution is for %d", ErrBehind, round, s.Round)
	}
	if s.Round != round || s.Base != base {
		// Told to resync, it usually comes back within the round with this round's weights:
		// the aggregator keeps waiting for it until the deadline. Counting it as answered let
		// a fast aggregator close rounds alone each time a replica behind knocked, and the
		// replica, resyncing, never caught up with rounds that ran faster than a fetch.
		return Outcome{Round: round, Status: StatusResync,
			Reason: fmt.Sprintf("round %d from weights %s; this round is %d from %s", s.Round, short(s.Base), round, short(base))}, nil, nil
	}
	set := r.cfg.Settings()
	if set.Idle {
		// Held until the begin deadline, every trainer that put this replica first in its
		// order lost that wait each round (and handed rounds to it): 37 s to a span's first
		// round in one run.
		return Outcome{Round: round, Status: StatusInactive, Reason: "this replica does not train"}, nil, nil
	}
	c := r.collection(round, base)
	pg, err := DecodePseudoGradient(s.Compression, r.cfg.Specs, s.Blob)
	if err == nil && (s.OuterLR != set.OuterLR || s.OuterMomentum != set.OuterMomentum) {
		err = fmt.Errorf("%w: made for an outer step of lr %g, momentum %g; this span's replicas use lr %g, momentum %g",
			ErrRejected, s.OuterLR, s.OuterMomentum, set.OuterLR, set.OuterMomentum)
	} else if err == nil && s.InnerLR != 0 && set.InnerLR != 0 && s.InnerLR != set.InnerLR {
		err = fmt.Errorf("%w: inner steps at learning rate %g; this span's replicas train at %g (set the same learning_rate on every replica)",
			ErrRejected, s.InnerLR, set.InnerLR)
	}
	if err == nil {
		err = r.checkSigned(from, round, base, s.Blob, s.Sig)
	}
	if err == nil {
		if why := r.tooLarge(pg); why != "" {
			err = fmt.Errorf("%w: %s", ErrRejected, why)
		}
	}
	if err != nil {
		r.mu.Lock()
		c.rejected[from] = err.Error()
		c.signal()
		r.mu.Unlock()
		logger().Warn("replica's pseudo-gradient refused", "round", round, "peer", from, "reason", err)
		return Outcome{Round: round, Status: StatusExcluded, Reason: err.Error()}, nil, nil
	}
	r.mu.Lock()
	c.got[from] = Contribution{Peer: from, Grad: pg}
	c.blobs[from] = s
	c.signal()
	r.mu.Unlock()
	// A replica that does not begin aggregating the round within its deadline (it does not
	// train, contributes to another, or catches up meanwhile) sends the contributor on to the
	// next replica: held until the contributor's own timeout, a killed aggregator's neighbour
	// stalled its rounds 40 s.
	begin := time.NewTimer(r.Deadline() + time.Second)
	defer begin.Stop()
wait:
	for {
		select {
		case <-c.done:
			break wait
		case <-ctx.Done():
			return Outcome{}, nil, ctx.Err()
		case <-begin.C:
			r.mu.Lock()
			busy := c.busy
			if !busy {
				delete(c.got, from)
				delete(c.blobs, from)
			}
			r.mu.Unlock()
			if !busy {
				return Outcome{Round: round, Status: StatusIdle, Reason: fmt.Sprintf("this replica has not begun aggregating round %d", round)}, nil, nil
			}
		}
	}
	if c.err != nil {
		return Outcome{}, nil, c.err
	}
	res := c.res
	if res.Status == StatusReplan {
		return res, nil, nil
	}
	if why, out := res.Excluded[from]; out {
		res.Status, res.Reason = StatusResync, "excluded: "+why
		return res, nil, nil
	}
	if !slices.Contains(res.Used, from) {
		res.Status, res.Reason = StatusResync, "arrived after the round closed"
		return res, nil, nil
	}
	r.mu.Lock()
	r.sentBytes += int64(len(c.result))
	tamper := r.tamperResult
	r.mu.Unlock()
	if tamper != nil {
		return res, tamper(slices.Clone(c.result)), nil
	}
	return res, c.result, nil
}
