package node

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// Verifiable rounds: every replica signs its pseudo-gradient with its libp2p key; the
// aggregator answers with all the signed contributions it aggregated, and each replica checks
// the signatures, finds its own contribution unaltered, and runs the same deterministic
// aggregation itself. An aggregator can still leave a contribution out (its owner notices),
// but it cannot forge, alter or make up an aggregate.

const contributionDomain = "neuroshard contribution v1\x00"

// signedBlob is one replica's encoded pseudo-gradient and its signature.
type signedBlob struct {
	comp diloco.Compression
	sig  []byte
	blob []byte
}

func contributionBytes(round int64, base string, blob []byte) []byte {
	sum := sha256.Sum256(blob)
	b := binary.BigEndian.AppendUint64([]byte(contributionDomain), uint64(round))
	b = append(append(b, base...), 0)
	return append(b, sum[:]...)
}

// signContribution signs a blob for a round with the node's key.
func (n *Node) signContribution(round int64, base string, blob []byte) ([]byte, error) {
	return n.key.Sign(contributionBytes(round, base, blob))
}

// checkContribution verifies a peer's signature over its blob.
func checkContribution(p peer.ID, round int64, base string, blob, sig []byte) error {
	pub, err := p.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: no public key in peer ID %s", diloco.ErrRejected, p)
	}
	ok, err := pub.Verify(contributionBytes(round, base, blob), sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: contribution of %s is not signed by it", diloco.ErrRejected, p)
	}
	return nil
}

// resultBlobs lays out a round's signed contributions in peer order.
func resultBlobs(blobs map[string]signedBlob) ([]p2p.ContributionRef, []byte) {
	peers := make([]string, 0, len(blobs))
	for p := range blobs {
		peers = append(peers, p)
	}
	slices.Sort(peers)
	var refs []p2p.ContributionRef
	var out []byte
	for _, p := range peers {
		b := blobs[p]
		refs = append(refs, p2p.ContributionRef{Peer: p, Compression: byte(b.comp), Sig: b.sig, Size: len(b.blob)})
		out = append(out, b.blob...)
	}
	return refs, out
}

// verifyRound recomputes a round's aggregate from the signed contributions in its result and
// checks that the replica's own contribution is among them, byte for byte.
func (n *Node) verifyRound(res p2p.ExchangeResult, data []byte, round int64, base string, specs []layers.ParamSpec, mine []byte) (*layers.Params, error) {
	var cs []diloco.Contribution
	me := n.host.ID().String()
	sawMine := false
	for _, ref := range res.Contributions {
		if ref.Size < 0 || ref.Size > len(data) {
			return nil, errors.New("node: round result: contribution sizes exceed the data")
		}
		blob := data[:ref.Size]
		data = data[ref.Size:]
		pid, err := peer.Decode(ref.Peer)
		if err != nil {
			return nil, fmt.Errorf("node: round result: bad peer %q", ref.Peer)
		}
		if err := checkContribution(pid, round, base, blob, ref.Sig); err != nil {
			return nil, err
		}
		if ref.Peer == me {
			if !slices.Equal(blob, mine) {
				return nil, errors.New("node: round result: my contribution was altered")
			}
			sawMine = true
		}
		g, err := decodePG(diloco.Compression(ref.Compression), specs, blob)
		if err != nil {
			return nil, err
		}
		cs = append(cs, diloco.Contribution{Peer: ref.Peer, Grad: g})
	}
	if len(data) != 0 {
		return nil, errors.New("node: round result: trailing data")
	}
	if !sawMine {
		return nil, errors.New("node: round result: my contribution was left out")
	}
	r, err := diloco.DefaultAggregator().Aggregate(specs, cs)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(r.Used, res.Used) {
		return nil, fmt.Errorf("node: round result says it used %v, the contributions give %v", res.Used, r.Used)
	}
	return r.Grad, nil
}
