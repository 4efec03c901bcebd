package diloco

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/neuroshard/neuroshard/layers"
)

func logger() *slog.Logger { return slog.Default().With("pkg", "diloco") }

// A replica's round. Every replica of a span computes its pseudo-gradient (theta_0 minus its
// weights after H inner steps), signs it and sends it to the round's aggregator: the replica
// with the lowest ID among those not known to be behind. The aggregator waits for every
// replica at its round or the round deadline, aggregates, and answers each contributor with
// every signed contribution it used; each replica checks the signatures, finds its own
// contribution unaltered, recomputes the aggregate itself and applies the outer step, so an
// aggregator can leave a contribution out (its owner notices) but cannot forge or alter one.
//
// The replica knows the network only through three small interfaces: a Transport for the
// exchange, a Membership view (who holds the span, at which round, connected or not) and a
// Signer. Waiting is event-driven: an arriving contribution wakes the aggregator at once.

// Submission is one replica's signed pseudo-gradient for a round.
type Submission struct {
	Round       int64
	Base        string // hash of the theta_0 the pseudo-gradient is relative to
	Compression Compression
	Loss        float32
	Sig         []byte
	Blob        []byte // the encoded pseudo-gradient (EncodePseudoGradient)
	// OuterLR and OuterMomentum are the outer step the contributor will apply: replicas that
	// disagree on it would end the round with different weights.
	OuterLR, OuterMomentum float32
	// InnerLR is the learning rate of the contributor's inner steps (0: not said): one taken
	// at another rate makes pseudo-gradients the outlier bounds refuse round after round.
	InnerLR float32
}

// Ref describes one signed contribution inside an Outcome's data.
type Ref struct {
	Peer        string
	Compression Compression
	Sig         []byte
	Size        int
}

// Outcome statuses.
const (
	StatusOK       = "ok"
	StatusExcluded = "excluded"
	StatusResync   = "resync"
	// StatusReplan: the aggregator found a lower replica at the round and handed the round to
	// it; the contributor plans the round again at once.
	StatusReplan = "replan"
	// StatusIdle: the replica asked did not begin aggregating the round within its deadline
	// (it contributes elsewhere, or catches up); the contributor tries the next one.
	StatusIdle = "idle"
	// StatusInactive: the replica asked does not train (Settings.Idle): the contributor tries
	// the next one at once, and neither waits for its contribution nor hands it the round.
	StatusInactive = "inactive"
)

// Outcome is a round's result for one contributor.
type Outcome struct {
	Round    int64
	Status   string // StatusOK, StatusExcluded, StatusResync, StatusReplan, StatusIdle or StatusInactive
	Reason   string
	Used     []string
	Excluded map[string]string
	NewHash  string // hash of theta_0 after the outer step
	// Contributions are the signed contributions the aggregate was made of, in peer order;
	// their blobs follow one another in the outcome's data.
	Contributions []Ref
}

// Transport carries a contribution to a round's aggregator and its outcome back.
type Transport interface {
	Contribute(ctx context.Context, to string, s Submission) (Outcome, []byte, error)
}

// Membership is the replica's view of its span's replicas.
type Membership interface {
	// Replicas lists the holders of exactly this span, this replica included, sorted.
	Replicas(ctx context.Context) []string
	// Round is the round a replica last said it stands at, if it said so recently.
	Round(peer string) (int64, bool)
	// Connected tells whether a replica can be reached now.
	Connected(peer string) bool
}

// Signer signs with this replica's key and checks the signatures of others.
type Signer interface {
	Sign(msg []byte) ([]byte, error)
	Verify(peer string, msg, sig []byte) error
}

// Weights are the trained weights of the span (the stage).
type Weights interface {
	Params() *layers.Params
	SetParams(*layers.Params) error
}

// LocalWeights, when the Weights implement it, keeps the inner steps a replica takes while a
// round runs: after the outer step, SetParams(theta_0) names the new version and SetLocal
// then sets the training weights to theta_0 plus that work (Rebase), which the next round's
// pseudo-gradient carries. Without it the work is dropped and the next round starts from
// theta_0 with none.
type LocalWeights interface {
	SetLocal(*layers.Params) error
}

// Settings are a round's knobs, read when it starts.
type Settings struct {
	Compression            Compression
	OuterLR, OuterMomentum float32
	InnerLR                float32 // the inner optimizer's learning rate (0: not checked)
	// Idle: the replica takes no inner steps now (training off), so it begins no round to
	// aggregate; a contributor that asks it is sent on at once.
	Idle bool
}

// Round is what the replica reports of a round it finished.
type Round struct {
	Round    int64 // the round finished (the replica now stands at Round+1)
	Steps    int64 // inner steps taken when it finished
	Hash     string
	Theta0   *layers.Params
	Used     []string
	Excluded map[string]string
}

// ReplicaConfig builds a Replica.
type ReplicaConfig struct {
	Self       string
	Specs      []layers.ParamSpec
	Weights    Weights
	Transport  Transport
	Membership Membership
	Signer     Signer
	Settings   func() Settings
	// Loss is the replica's recent training loss, sent with its contribution.
	Loss func() float32
	// RoundTimeout caps how long an aggregator waits for late replicas. Within it the wait
	// adapts to the round's work (Deadline); before any round was timed it is the wait.
	RoundTimeout time.Duration
	// MinDeadline is the shortest adaptive wait (DefaultMinDeadline when 0).
	MinDeadline time.Duration
	// Round is the number of rounds the loaded weights had completed.
	Round int64
	// Finished is called after every round the replica applied (to save and announce it),
	// outside the replica's lock.
	Finished func(Round)
	// Tamper, when set (tests only), rewrites the pseudo-gradient before it is encoded: a
	// dishonest replica.
	Tamper func(*layers.Params)
}

// ErrResync is wrapped by RunRound when the aggregator says this replica's weights are behind
// the round: the caller fetches the span's state from that aggregator.
var ErrResync = errors.New("diloco: behind the round")

// ResyncError names the replica to resync from.
type ResyncError struct {
	From   string
	Reason string
}

func (e *ResyncError) Error() string {
	return fmt.Sprintf("diloco: behind the round (%s): resync from %s", e.Reason, e.From)
}

// Is makes errors.Is(err, ErrResync) hold.
func (e *ResyncError) Is(t error) bool { return t == ErrResync }

// ErrReplan is wrapped by RunRound when the round moved to another aggregator: the caller runs
// the round again at once (its work still counts; nothing was applied).
var ErrReplan = errors.New("diloco: the round moved to another aggregator")

// ErrBehind is returned by Accept when the contributor is at a newer round than this
// replica: this replica should catch up, and the contributor asks another aggregator.
var ErrBehind = errors.New("diloco: this replica is behind the contributor's round")

// maxExclusions is how many exclusions a replica remembers: rounds can follow each other
// within a second, so the last round's alone would hide most of them.
const maxExclusions = 32

// Exclusion is one replica left out of one round, and why.
type Exclusion struct {
	Round  int64
	Peer   string
	Reason string
}

// reasonBehind is why a contribution made from another round's weights is left out: the
// replica is behind, not at fault.
const reasonBehind = "behind: resyncing"

// Fault tells whether the exclusion was for what the peer sent (a malformed, poisoned or
// badly signed pseudo-gradient, another outer step), not for being behind.
func (e Exclusion) Fault() bool { return e.Reason != reasonBehind }

// Faulty lists the peers of exclusions that were for a fault.
func Faulty(excl []Exclusion) map[string]bool {
	out := map[string]bool{}
	for _, e := range excl {
		if e.Fault() {
			out[e.Peer] = true
		}
	}
	return out
}

// State is a snapshot of a replica's progress.
type State struct {
	Round      int64 // rounds completed
	Hash       string
	StepsAtEnd int64 // inner steps taken when the last round ended
	OK, Failed int64 // rounds that synced, and rounds that failed
	Shared     int64 // rounds that averaged more than one replica
	SentBytes  int64 // pseudo-gradient bytes sent (contributions and results)
	LastUsed   []string
	Collecting bool // aggregating a round now
	// LastFailure is why the latest round failed, when none has succeeded since (Fail).
	LastFailure string
}

// Replica is one replica's DiLoCo state for its span: theta_0 (the weights every replica
// agreed on at the end of the last round), the outer optimizer, and the round it aggregates.
type Replica struct {
	cfg ReplicaConfig

	mu         sync.Mutex
	theta0     *layers.Params
	hash       string // theta0's hash, kept with it (hashing a span costs milliseconds)
	outer      *Outer
	round      int64
	stepsAtEnd int64
	collect    *collection
	ok, failed int64
	lastFail   string // why the latest round failed; cleared by a round that succeeds
	shared     int64
	sentBytes  int64
	lastUsed   []string
	refused    bool // the aggregator excluded this replica's last contribution
	// members maps each replica whose signed pseudo-gradient a round of this replica used to
	// the newest such round: the span's members, whose reports count.
	members    map[string]int64
	exclusions []Exclusion
	// settled is when theta_0 last became the weights (a round's end, a catch-up, a skip);
	// work the times from it to the next round's start, the latest workSamples of them.
	settled time.Time
	work    []time.Duration
	// norms are the aggregated pseudo-gradients' norms of the latest rounds (normSamples).
	norms []float64
	// tamperResult, when set (tests only), rewrites the contributions this aggregator sends
	// back: a dishonest aggregator.
	tamperResult func([]byte) []byte
}

// NewReplica starts a replica from the weights it holds now.
func NewReplica(cfg ReplicaConfig) *Replica {
	s := cfg.Settings()
	theta0 := cfg.Weights.Params()
	return &Replica{cfg: cfg, theta0: theta0, hash: theta0.Hash(), outer: NewOuter(s.OuterLR, s.OuterMomentum), round: cfg.Round,
		settled: time.Now()}
}

// DefaultMinDeadline is the shortest adaptive round wait.
const DefaultMinDeadline = 2 * time.Second

// workSamples is how many rounds' work times the adaptive deadline looks at.
const workSamples = 8

// Deadline is how long this replica, as aggregator, waits for late replicas: half the time
// its own inner steps of a round take (the median of recent rounds), plus a second, at least
// MinDeadline and at most RoundTimeout. A replica up to 1.5x slower than this one makes the
// round; a dead or stuck one costs that, not a fixed timeout. Before a round was timed it is
// RoundTimeout.
func (r *Replica) Deadline() time.Duration {
	r.mu.Lock()
	work := slices.Clone(r.work)
	r.mu.Unlock()
	if len(work) == 0 {
		return r.cfg.RoundTimeout
	}
	slices.Sort(work)
	floor := r.cfg.MinDeadline
	if floor <= 0 {
		floor = DefaultMinDeadline
	}
	return min(r.cfg.RoundTimeout, max(floor, work[len(work)/2]/2+time.Second))
}

// normSamples is how many rounds' aggregated norms bound a contribution's.
const normSamples = 16

// NormFactor bounds a contribution's norm: at most this many times the median norm of the
// replica's recent rounds' aggregates (once it has three). A pseudo-gradient's size follows
// from the inner optimizer's step size and the number of steps, so a replica cannot be
// 20x everyone's recent rounds honestly; the check holds whoever else sent a contribution to
// the round (two contributions, one of them near zero, left the pairwise check blind).
const NormFactor = 20

// normLimit is the largest contribution norm this replica takes, if it has timed enough
// rounds to say.
func (r *Replica) normLimit() (float64, bool) {
	r.mu.Lock()
	ns := slices.Clone(r.norms)
	r.mu.Unlock()
	if len(ns) < 3 {
		return 0, false
	}
	slices.Sort(ns)
	return NormFactor * ns[len(ns)/2], ns[len(ns)/2] > 0
}

// tooLarge says why a contribution's norm is over normLimit ("" when it is not).
func (r *Replica) tooLarge(pg *layers.Params) string {
	lim, ok := r.normLimit()
	if n := Norm(pg); ok && n > lim {
		return fmt.Sprintf("norm %.3g is over %dx the recent rounds' median (%.3g)", n, NormFactor, lim/NormFactor)
	}
	return ""
}

// Plausible checks that theta0, offered as the span's theta_0 at round, lies at a distance
// from this replica's own theta_0 that honest rounds could cover: per round between them, at
// most NormFactor times the largest outer step a typical pseudo-gradient makes (lr x (1 + mu +
// mu^2/(1-mu)) times it, momentum built up in full), the typical size being the larger of the
// median of recent aggregates and this replica's own pseudo-gradient now. A replica that took
// a round alone with a poisoned pseudo-gradient (1000x) moves theta_0 hundreds of times
// further; one with nothing to compare with (no round, no work yet) takes any.
func (r *Replica) Plausible(round int64, theta0 *layers.Params) error {
	r.mu.Lock()
	mine, at, ns := r.theta0, r.round, slices.Clone(r.norms)
	lr, mu := float64(r.outer.LR), float64(r.outer.Momentum)
	r.mu.Unlock()
	ref := 0.0
	if len(ns) > 0 {
		slices.Sort(ns)
		ref = ns[len(ns)/2]
	}
	if pg, err := PseudoGradient(mine, r.cfg.Weights.Params()); err == nil {
		ref = max(ref, Norm(pg))
	}
	if ref == 0 || mu >= 1 {
		return nil
	}
	d, err := PseudoGradient(mine, theta0)
	if err != nil {
		return err
	}
	rounds := float64(max(1, round-at))
	limit := rounds * NormFactor * lr * (1 + mu + mu*mu/(1-mu)) * ref
	if dist := Norm(d); dist > limit {
		return fmt.Errorf("diloco: theta_0 offered for round %d is %.3g from this replica's (round %d), over the %.3g that %g honest rounds could move it", round, dist, at, limit, rounds)
	}
	return nil
}

// settle notes that theta_0 became the weights now; the caller holds r.mu.
func (r *Replica) settle() { r.settled = time.Now() }

// timeWork notes the time the inner steps of the round starting now took.
func (r *Replica) timeWork() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.settled.IsZero() {
		return
	}
	r.work = append(r.work, time.Since(r.settled))
	if len(r.work) > workSamples {
		r.work = r.work[len(r.work)-workSamples:]
	}
	r.settled = time.Time{} // one sample per round: a replanned round is not timed twice
}

// State is a snapshot of the replica's progress.
func (r *Replica) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return State{Round: r.round, Hash: r.hash, StepsAtEnd: r.stepsAtEnd, OK: r.ok, Failed: r.failed, Shared: r.shared,
		SentBytes: r.sentBytes, LastUsed: slices.Clone(r.lastUsed), Collecting: r.collect != nil && r.collect.busy,
		LastFailure: r.lastFail}
}

// Exclusions lists the remembered exclusions, newest first.
func (r *Replica) Exclusions() []Exclusion {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.exclusions)
	slices.Reverse(out)
	return out
}

// Snapshot is what a replica behind needs to catch up: the round, theta_0 and the outer
// momentum (nil before the first outer step).
func (r *Replica) Snapshot() (round int64, theta0 *layers.Params, velocity [][]float32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.round, r.theta0.Clone(), r.outer.Velocity()
}

// Adopt replaces theta_0, the round and the outer momentum with another replica's (a
// checkpoint the caller checked) and makes them the weights; steps is the inner step count
// the next round counts from.
func (r *Replica) Adopt(round int64, theta0 *layers.Params, velocity [][]float32, steps int64) error {
	lw, keep := r.cfg.Weights.(LocalWeights)
	r.mu.Lock()
	old, mine, refused := r.theta0, r.round, r.refused
	r.refused = false
	r.mu.Unlock()
	// The replica's work since its own theta_0 moves onto the adopted one when it missed at
	// most a round: the next round's pseudo-gradient carries it instead of it being thrown
	// away. Work from further behind was done on weights the span has left; carried over, a
	// joiner's hundreds of steps from the initial weights made a pseudo-gradient 20x the
	// others' and got it excluded as an outlier. Work the last round refused (an outlier) is
	// dropped: carried into every next round, it grew round after round and kept the replica
	// excluded for good.
	keep = keep && round <= mine+1 && !refused
	var local *layers.Params
	if keep {
		local = Rebase(theta0, old, r.cfg.Weights.Params())
	}
	if err := r.cfg.Weights.SetParams(theta0); err != nil {
		return err
	}
	if keep {
		if err := lw.SetLocal(local); err != nil {
			return err
		}
	}
	s := r.cfg.Settings()
	h := theta0.Hash()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.settle()
	r.theta0, r.hash, r.round, r.stepsAtEnd = theta0, h, round, steps
	r.outer = NewOuter(s.OuterLR, s.OuterMomentum)
	r.outer.SetVelocity(velocity)
	if c := r.collect; c != nil { // a round being collected is moot now: wake it
		select {
		case c.arrived <- struct{}{}:
		default:
		}
	}
	return nil
}

// Skip counts a round that failed (or that a catch-up made moot): the next is due H inner
// steps after steps.
func (r *Replica) Skip(steps int64, failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stepsAtEnd = steps
	r.settled = time.Time{} // the next round's work started before this: not timed
	if failed {
		r.failed++
	}
}

// Fail ends a round that failed: Skip(steps, true), and err is kept as the reason the
// replica's state shows until a round succeeds (a replica refused for its settings, say, is
// told so by the aggregator, and its operator reads it in the node's training status).
func (r *Replica) Fail(steps int64, err error) {
	r.Skip(steps, true)
	r.mu.Lock()
	r.lastFail = err.Error()
	r.mu.Unlock()
}

// SetTamperResult (tests only) makes this aggregator rewrite the contributions it returns.
func (r *Replica) SetTamperResult(f func([]byte) []byte) {
	r.mu.Lock()
	r.tamperResult = f
	r.mu.Unlock()
}

// RunRound takes part in the round the replica stands at, as its aggregator or as a
// contributor, and applies the agreed outer step; steps is the inner step count now. A
// *ResyncError means the aggregator found this replica's weights behind.
func (r *Replica) RunRound(ctx context.Context, steps int64) error {
	s := r.cfg.Settings()
	r.mu.Lock()
	theta0, round, base := r.theta0.Clone(), r.round, r.hash
	// The round's outer step uses the settings of its start, whatever changes meanwhile.
	r.outer.LR, r.outer.Momentum = s.OuterLR, s.OuterMomentum
	r.mu.Unlock()
	r.timeWork()
	snap := r.cfg.Weights.Params()
	pg, err := PseudoGradient(theta0, snap)
	if err != nil {
		return err
	}
	if r.cfg.Tamper != nil {
		r.cfg.Tamper(pg)
	}
	blob, err := EncodePseudoGradient(s.Compression, pg)
	if err != nil {
		return err
	}
	sig, err := r.cfg.Signer.Sign(ContributionMessage(round, base, blob))
	if err != nil {
		return err
	}
	loss := float32(0)
	if r.cfg.Loss != nil {
		loss = r.cfg.Loss()
	}
	mine := Submission{Round: round, Base: base, Compression: s.Compression, Loss: loss, Sig: sig, Blob: blob,
		OuterLR: s.OuterLR, OuterMomentum: s.OuterMomentum, InnerLR: s.InnerLR}
	all := r.cfg.Membership.Replicas(ctx)
	reps := r.aggregators(all, round)
	for _, agg := range reps {
		if agg == r.cfg.Self {
			res, aggPG, err := r.aggregate(ctx, mine, all)
			if err != nil {
				return err
			}
			return r.finish(res, aggPG, base, steps, snap)
		}
		r.mu.Lock()
		r.sentBytes += int64(len(blob))
		r.mu.Unlock()
		ectx, cancel := context.WithTimeout(ctx, 2*r.cfg.RoundTimeout+30*time.Second)
		res, out, err := r.cfg.Transport.Contribute(ectx, agg, mine)
		cancel()
		if err != nil {
			logger().Warn("aggregator unreachable; trying the next replica", "aggregator", agg, "err", err)
			continue
		}
		switch res.Status {
		case StatusResync:
			return &ResyncError{From: agg, Reason: res.Reason}
		case StatusReplan:
			return fmt.Errorf("%w: %s", ErrReplan, res.Reason)
		case StatusIdle:
			logger().Info("aggregator idle; trying the next replica", "aggregator", agg, "reason", res.Reason)
			continue
		case StatusInactive:
			// Not a replica of this round at all: not waited for, not handed the round.
			all = slices.DeleteFunc(all, func(p string) bool { return p == agg })
			continue
		case StatusOK:
		default:
			r.mu.Lock()
			r.refused = true // the work it carried is not carried again (Adopt)
			r.mu.Unlock()
			return fmt.Errorf("diloco: excluded from round %d: %s", round, res.Reason)
		}
		aggPG, err := r.verify(res, out, round, base, blob)
		if err != nil {
			return fmt.Errorf("diloco: round %d from %s does not verify: %w", round, agg, err)
		}
		return r.finish(res, aggPG, base, steps, snap)
	}
	return errors.New("diloco: no aggregator answered")
}

// finish applies the aggregated pseudo-gradient to theta_0 with the outer step, checks the
// result against the aggregator's, and makes it the weights (plus the inner steps taken since
// snap, the weights the round's pseudo-gradient was made from, with LocalWeights). base is the
// hash of the theta_0 the round started from: if a catch-up replaced theta_0 meanwhile, the
// aggregate no longer applies to it.
func (r *Replica) finish(res Outcome, aggPG *layers.Params, base string, steps int64, snap *layers.Params) error {
	r.mu.Lock()
	if err := r.sameRound(res.Round, base); err != nil {
		r.mu.Unlock()
		return err
	}
	if err := r.outer.Step(r.theta0, aggPG); err != nil {
		r.mu.Unlock()
		return err
	}
	h := r.theta0.Hash()
	r.hash = h
	if h != res.NewHash {
		// theta0 took a step the others did not: this replica's state no longer matches any
		// round; it stays at the round and resyncs (its next contribution is refused).
		r.mu.Unlock()
		return fmt.Errorf("diloco: after round %d my weights hash to %s, the aggregator's to %s", res.Round, short(h), short(res.NewHash))
	}
	lw, keep := r.cfg.Weights.(LocalWeights)
	var local *layers.Params
	if keep {
		// The work done while the round ran stays; a step that lands between this read and
		// SetLocal is the only one lost.
		local = Rebase(r.theta0, snap, r.cfg.Weights.Params())
	}
	if err := r.cfg.Weights.SetParams(r.theta0); err != nil {
		r.mu.Unlock()
		return err
	}
	if keep {
		if err := lw.SetLocal(local); err != nil {
			r.mu.Unlock()
			return err
		}
	}
	r.round = res.Round + 1
	r.stepsAtEnd = steps
	r.settle()
	r.norms = append(r.norms, Norm(aggPG))
	if len(r.norms) > normSamples {
		r.norms = r.norms[len(r.norms)-normSamples:]
	}
	r.ok++
	r.lastFail = ""
	r.noteExclusions(res.Round, res.Excluded)
	r.lastUsed = res.Used
	r.noteMembers(res.Round, res.Used)
	if len(res.Used) > 1 {
		r.shared++
	}
	done := Round{Round: res.Round, Steps: steps, Hash: h, Theta0: r.theta0.Clone(), Used: res.Used, Excluded: res.Excluded}
	r.mu.Unlock()
	logger().Info("DiLoCo round done", "round", res.Round, "replicas", len(res.Used), "excluded", len(res.Excluded), "hash", short(h))
	if r.cfg.Finished != nil {
		r.cfg.Finished(done)
	}
	return nil
}

// noteExclusions records the replicas a round left out; the caller holds r.mu.
func (r *Replica) noteExclusions(round int64, excluded map[string]string) {
	for _, p := range slices.Sorted(maps.Keys(excluded)) {
		r.exclusions = append(r.exclusions, Exclusion{Round: round, Peer: p, Reason: excluded[p]})
	}
	if len(r.exclusions) > maxExclusions {
		r.exclusions = slices.Clone(r.exclusions[len(r.exclusions)-maxExclusions:])
	}
}

// sameRound checks that theta_0 is still the one the round started from: a catch-up may have
// replaced it while the round ran. The caller holds r.mu.
func (r *Replica) sameRound(round int64, base string) error {
	if r.round != round || r.hash != base {
		return fmt.Errorf("diloco: round %d: theta_0 changed while the round ran (caught up to round %d meanwhile)", round, r.round)
	}
	return nil
}

// connectedWait is how often an aggregator looks again at whether the replicas it waits for
// are still connected (arrivals wake it at once; a disconnect has no event of its own).
const connectedWait = 250 * time.Millisecond

func short(h string) string { return h[:min(12, len(h))] }
