package replicanet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// Span names the model and layers a replica holds.
type Span struct {
	Model string
	Span  layers.Span
}

// ExchangeDialTimeout bounds a dial to an aggregator: the replicas of a span stay connected
// through the gossip mesh, so a dial is to one that is gone or unreachable, and waiting out
// a transport's handshake timeout (5 s) made a round wait past twice its deadline.
const ExchangeDialTimeout = time.Second

// Transport sends contributions over the exchange protocol.
type Transport struct {
	Host *p2p.Host
	Span func() Span
}

// Contribute implements diloco.Transport.
func (t Transport) Contribute(ctx context.Context, to string, s diloco.Submission) (diloco.Outcome, []byte, error) {
	id, err := peer.Decode(to)
	if err != nil {
		return diloco.Outcome{}, nil, err
	}
	sp := t.Span()
	req := p2p.ExchangeRequest{Model: sp.Model, First: sp.Span.First, Last: sp.Span.Last, Round: s.Round, BaseHash: s.Base,
		Compression: byte(s.Compression), Loss: s.Loss, Sig: s.Sig, OuterLR: s.OuterLR, OuterMomentum: s.OuterMomentum, InnerLR: s.InnerLR}
	res, data, err := t.Host.Exchange(network.WithDialPeerTimeout(ctx, ExchangeDialTimeout), id, req, s.Blob)
	if err != nil {
		return diloco.Outcome{}, nil, err
	}
	out := diloco.Outcome{Round: res.Round, Status: res.Status, Reason: res.Reason, Used: res.Used, Excluded: res.Excluded, NewHash: res.NewHash}
	for _, c := range res.Contributions {
		out.Contributions = append(out.Contributions, diloco.Ref{Peer: c.Peer, Compression: diloco.Compression(c.Compression), Sig: c.Sig, Size: c.Size})
	}
	return out, data, nil
}

// Handler answers the exchange protocol for the replica of a span. replica returns the
// replica and the span it holds (nil before it holds one); behind is called when a
// contributor is at a newer round than this replica (it should catch up from it).
func Handler(replica func() (*diloco.Replica, Span), behind func(from peer.ID)) p2p.ExchangeHandler {
	return func(ctx context.Context, from peer.ID, req p2p.ExchangeRequest, blob []byte) (p2p.ExchangeResult, []byte, error) {
		r, held := replica()
		if r == nil || req.Model != held.Model || (layers.Span{First: req.First, Last: req.Last}) != held.Span {
			return p2p.ExchangeResult{}, nil, &p2p.RemoteError{Code: "NOT_HELD", Message: "this node does not hold that span"}
		}
		sub := diloco.Submission{Round: req.Round, Base: req.BaseHash, Compression: diloco.Compression(req.Compression), Loss: req.Loss,
			Sig: req.Sig, Blob: blob, OuterLR: req.OuterLR, OuterMomentum: req.OuterMomentum, InnerLR: req.InnerLR}
		res, data, err := r.Accept(ctx, from.String(), sub)
		if errors.Is(err, diloco.ErrBehind) {
			// This replica is the one behind: it catches up, and the contributor asks another.
			go behind(from)
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
}

// Members is the span's replicas as the node sees them.
type Members struct {
	Host *p2p.Host
	// Holders lists the peers holding exactly the span, this one included.
	Holders func(ctx context.Context) []peer.ID
	// RoundOf is the round a peer last gossiped, if recently.
	RoundOf func(peer.ID) (int64, bool)
}

// Replicas implements diloco.Membership.
func (m Members) Replicas(ctx context.Context) []string {
	var out []string
	for _, p := range m.Holders(ctx) {
		out = append(out, p.String())
	}
	return out
}

// Round implements diloco.Membership.
func (m Members) Round(p string) (int64, bool) {
	id, err := peer.Decode(p)
	if err != nil {
		return 0, false
	}
	return m.RoundOf(id)
}

// Connected implements diloco.Membership.
func (m Members) Connected(p string) bool {
	id, err := peer.Decode(p)
	return err == nil && m.Host.Libp2p().Network().Connectedness(id) == network.Connected
}

// Signer signs with a libp2p key and checks signatures against the key in a peer's ID.
type Signer struct{ Key crypto.PrivKey }

// Sign implements diloco.Signer.
func (s Signer) Sign(msg []byte) ([]byte, error) { return s.Key.Sign(msg) }

// Verify implements diloco.Signer.
func (s Signer) Verify(p string, msg, sig []byte) error {
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
