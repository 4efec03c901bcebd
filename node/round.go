package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/p2p"
)

// The node's part of the DiLoCo round: the round itself is diloco.Replica; the node gives it
// the network (the exchange protocol, the span's replicas from coverage and gossip, the
// libp2p key) and runs a round each time the stage has taken H inner steps.

// shortRound is the H at and below which the outer step's momentum was measured to hurt
// (README, Performance).
const shortRound = 50

// initSync makes the replica of the held span, from the loaded weights.
func (n *Node) initSync(st *layers.Stage, round int64) {
	first := st.Span().First
	n.replica = diloco.NewReplica(diloco.ReplicaConfig{
		Self: n.host.ID().String(), Specs: n.model.ParamSpecs(st.Span()), Weights: st,
		Transport: exchange{n}, Membership: members{n}, Signer: keySigner{n.key},
		Settings: n.roundSettings, Loss: n.recentLoss, RoundTimeout: n.cfg.RoundTimeout, Round: round,
		Finished: n.roundFinished,
		Consumed: func(p string) {
			if id, err := peer.Decode(p); err == nil {
				n.lsync.SendReceipt(id, ledger.ProofRound, first, 1)
			}
		},
		Tamper: func(p *layers.Params) {
			if n.tamper != nil {
				n.tamper(p)
			}
		},
	})
}

// roundState is the replica's progress (zero before the node holds a span).
func (n *Node) roundState() diloco.State {
	if n.replica == nil {
		return diloco.State{}
	}
	return n.replica.State()
}

// roundSettings are the round's knobs as the node's settings say now.
func (n *Node) roundSettings() diloco.Settings {
	t := n.settings.Get().Training
	return diloco.Settings{Compression: t.Codec(), OuterLR: float32(t.OuterLR), OuterMomentum: float32(t.OuterMomentum)}
}

// roundFinished saves the agreed weights and tells the network.
func (n *Node) roundFinished(r diloco.Round) {
	meta := layers.CheckpointMeta{Model: n.model.Name, Span: n.Span(), Step: r.Steps, Round: r.Round + 1}
	if err := layers.SaveCheckpoint(n.checkpointPath(n.Span()), meta, r.Theta0); err != nil {
		logger().Warn("could not save the checkpoint", "err", err)
	}
	n.publishTraining()
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

// wake tells the round loop that something it waits on changed (an inner step, a report).
func (n *Node) wake() {
	select {
	case n.roundWake <- struct{}{}:
	default:
	}
}

// roundCheck is how often the round loop looks at the gossip for a replica ahead when nothing
// woke it.
const roundCheck = time.Second

// roundLoop runs a DiLoCo round each time the stage has taken H inner steps since the last,
// and catches up when gossip shows a replica ahead. Inner steps and reports wake it.
func (n *Node) roundLoop() {
	defer n.wg.Done()
	t := time.NewTicker(roundCheck)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.roundWake:
		case <-t.C:
		}
		if n.ctx.Err() != nil { // select picks at random when both are ready
			return
		}
		h := int64(n.settings.Get().Training.DiLoCoSteps)
		steps := n.innerSteps()
		if steps-n.replica.State().StepsAtEnd < h {
			n.catchUp()
			continue
		}
		if from, ahead := n.newerReplica(); ahead {
			// Behind the others: this round's work is moot; take theirs.
			n.catchUpFrom(from)
			n.replica.Skip(steps, false)
			continue
		}
		err := n.replica.RunRound(n.ctx, steps)
		var re *diloco.ResyncError
		if errors.As(err, &re) {
			logger().Info("weights behind the round; fetching the span's checkpoint", "from", re.From, "reason", re.Reason)
			id, derr := peer.Decode(re.From)
			if err = derr; err == nil {
				err = n.resyncFrom(n.ctx, id, steps)
			}
		}
		if err != nil && n.ctx.Err() == nil {
			logger().Warn("DiLoCo round failed", "err", err)
			n.replica.Skip(steps, true) // try again after H more steps
		}
	}
}

// exchange carries contributions over /neuroshard/exchange-gradient/1.0.0.
type exchange struct{ n *Node }

func (x exchange) Contribute(ctx context.Context, to string, s diloco.Submission) (diloco.Outcome, []byte, error) {
	id, err := peer.Decode(to)
	if err != nil {
		return diloco.Outcome{}, nil, err
	}
	span := x.n.Span()
	req := p2p.ExchangeRequest{Model: x.n.model.Name, First: span.First, Last: span.Last, Round: s.Round, BaseHash: s.Base,
		Compression: byte(s.Compression), Loss: s.Loss, Sig: s.Sig, OuterLR: s.OuterLR, OuterMomentum: s.OuterMomentum}
	res, data, err := x.n.host.Exchange(ctx, id, req, s.Blob)
	if err != nil {
		return diloco.Outcome{}, nil, err
	}
	out := diloco.Outcome{Round: res.Round, Status: res.Status, Reason: res.Reason, Used: res.Used, Excluded: res.Excluded, NewHash: res.NewHash}
	for _, c := range res.Contributions {
		out.Contributions = append(out.Contributions, diloco.Ref{Peer: c.Peer, Compression: diloco.Compression(c.Compression), Sig: c.Sig, Size: c.Size})
	}
	return out, data, nil
}

// serveExchange receives a replica's contribution when this node aggregates the round.
func (n *Node) serveExchange(ctx context.Context, from peer.ID, req p2p.ExchangeRequest, blob []byte) (p2p.ExchangeResult, []byte, error) {
	st := n.Stage()
	if st == nil || n.replica == nil || req.Model != n.model.Name || (layers.Span{First: req.First, Last: req.Last}) != st.Span() {
		return p2p.ExchangeResult{}, nil, &p2p.RemoteError{Code: "NOT_HELD", Message: "this node does not hold that span"}
	}
	sub := diloco.Submission{Round: req.Round, Base: req.BaseHash, Compression: diloco.Compression(req.Compression), Loss: req.Loss,
		Sig: req.Sig, Blob: blob, OuterLR: req.OuterLR, OuterMomentum: req.OuterMomentum}
	res, data, err := n.replica.Accept(ctx, from.String(), sub)
	if errors.Is(err, diloco.ErrBehind) {
		// This node is the one behind: it catches up, and the contributor asks another.
		go n.catchUpFrom(from)
		return p2p.ExchangeResult{}, nil, &p2p.RemoteError{Code: "BEHIND", Message: err.Error()}
	}
	if err != nil {
		return p2p.ExchangeResult{}, nil, err
	}
	out := p2p.ExchangeResult{Round: res.Round, Status: res.Status, Reason: res.Reason, Used: res.Used, Excluded: res.Excluded, NewHash: res.NewHash}
	for _, c := range res.Contributions {
		out.Contributions = append(out.Contributions, p2p.ContributionRef{Peer: c.Peer, Compression: byte(c.Compression), Sig: c.Sig, Size: c.Size})
	}
	return out, data, nil
}

// members is the span's replicas as coverage and gossip show them.
type members struct{ n *Node }

func (m members) Replicas(ctx context.Context) []string {
	var out []string
	for _, p := range m.n.replicas(ctx) {
		out = append(out, p.String())
	}
	return out
}

func (m members) Round(p string) (int64, bool) {
	id, err := peer.Decode(p)
	if err != nil {
		return 0, false
	}
	m.n.reports.mu.Lock()
	defer m.n.reports.mu.Unlock()
	ra, ok := m.n.reports.by[id]
	if !ok || time.Since(ra.at) >= reportTTL {
		return 0, false
	}
	return ra.r.Round, true
}

func (m members) Connected(p string) bool {
	id, err := peer.Decode(p)
	return err == nil && m.n.host.Libp2p().Network().Connectedness(id) == network.Connected
}

// keySigner signs contributions with the node's libp2p key; a peer's key is in its ID.
type keySigner struct{ key crypto.PrivKey }

func (s keySigner) Sign(msg []byte) ([]byte, error) { return s.key.Sign(msg) }

func (s keySigner) Verify(p string, msg, sig []byte) error {
	id, err := peer.Decode(p)
	if err != nil {
		return fmt.Errorf("bad peer ID %q", p)
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("no public key in peer ID %s", p)
	}
	if ok, err := pub.Verify(msg, sig); err != nil || !ok {
		return errors.New("signature does not verify")
	}
	return nil
}

func short12(h string) string { return h[:min(12, len(h))] }

// innerSteps is how many inner steps the stage has taken.
func (n *Node) innerSteps() int64 {
	n.train.mu.Lock()
	defer n.train.mu.Unlock()
	return n.train.innerSteps
}

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
