package diloco

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/neuroshard/neuroshard/layers"
)

// Verifiable rounds: every replica signs its pseudo-gradient; the aggregator answers with all
// the signed contributions it aggregated, and each replica checks the signatures, finds its
// own contribution unaltered, and runs the same deterministic aggregation itself.

const contributionDomain = "neuroshard contribution v1\x00"

// ContributionMessage is what a replica signs for a round: the domain, the round, the base
// hash and the blob's SHA-256.
func ContributionMessage(round int64, base string, blob []byte) []byte {
	sum := sha256.Sum256(blob)
	b := binary.BigEndian.AppendUint64([]byte(contributionDomain), uint64(round))
	b = append(append(b, base...), 0)
	return append(b, sum[:]...)
}

// checkSigned verifies a replica's signature over its blob.
func (r *Replica) checkSigned(p string, round int64, base string, blob, sig []byte) error {
	if err := r.cfg.Signer.Verify(p, ContributionMessage(round, base, blob), sig); err != nil {
		return fmt.Errorf("%w: contribution of %s is not signed by it (%v)", ErrRejected, p, err)
	}
	return nil
}

// resultBlobs lays out a round's signed contributions in peer order.
func resultBlobs(subs map[string]Submission) ([]Ref, []byte) {
	var refs []Ref
	var out []byte
	for _, p := range slices.Sorted(maps.Keys(subs)) {
		s := subs[p]
		refs = append(refs, Ref{Peer: p, Compression: s.Compression, Sig: s.Sig, Size: len(s.Blob)})
		out = append(out, s.Blob...)
	}
	return refs, out
}

// verify recomputes a round's aggregate from the signed contributions in its outcome and
// checks that this replica's own contribution is among them, byte for byte.
func (r *Replica) verify(res Outcome, data []byte, round int64, base string, mine []byte) (*layers.Params, error) {
	var cs []Contribution
	sawMine := false
	for _, ref := range res.Contributions {
		if ref.Size < 0 || ref.Size > len(data) {
			return nil, errors.New("diloco: round result: contribution sizes exceed the data")
		}
		blob := data[:ref.Size]
		data = data[ref.Size:]
		if err := r.checkSigned(ref.Peer, round, base, blob, ref.Sig); err != nil {
			return nil, err
		}
		if ref.Peer == r.cfg.Self {
			if !slices.Equal(blob, mine) {
				return nil, errors.New("diloco: round result: my contribution was altered")
			}
			sawMine = true
		}
		g, err := DecodePseudoGradient(ref.Compression, r.cfg.Specs, blob)
		if err != nil {
			return nil, err
		}
		cs = append(cs, Contribution{Peer: ref.Peer, Grad: g})
	}
	if len(data) != 0 {
		return nil, errors.New("diloco: round result: trailing data")
	}
	if !sawMine {
		return nil, errors.New("diloco: round result: my contribution was left out")
	}
	agg, err := DefaultAggregator().Aggregate(r.cfg.Specs, cs)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(agg.Used, res.Used) {
		return nil, fmt.Errorf("diloco: round result says it used %v, the contributions give %v", res.Used, agg.Used)
	}
	for _, c := range cs {
		if why := r.tooLarge(c.Grad); why != "" && c.Peer != r.cfg.Self && slices.Contains(agg.Used, c.Peer) {
			// The aggregator used a contribution this replica would have refused (its own,
			// most likely): the round is not taken, and the peer is on record.
			r.mu.Lock()
			r.noteExclusions(round, map[string]string{c.Peer: why})
			r.mu.Unlock()
			return nil, fmt.Errorf("diloco: round result uses %s's pseudo-gradient: %s", short(c.Peer), why)
		}
	}
	return agg.Grad, nil
}

// EncodePseudoGradient compresses a pseudo-gradient tensor by tensor: uint32 length, bytes.
func EncodePseudoGradient(c Compression, p *layers.Params) ([]byte, error) {
	var out []byte
	for _, v := range p.Values {
		b, err := Compress(c, v)
		if err != nil {
			return nil, err
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	return out, nil
}

// DecodePseudoGradient reads a pseudo-gradient for specs, refusing truncated, oversized,
// trailing or non-finite data (ErrRejected).
func DecodePseudoGradient(c Compression, specs []layers.ParamSpec, b []byte) (*layers.Params, error) {
	p := &layers.Params{Specs: specs, Values: make([][]float32, len(specs))}
	for i, s := range specs {
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: pseudo-gradient truncated", ErrRejected)
		}
		n := int(binary.LittleEndian.Uint32(b))
		b = b[4:]
		if n > len(b) {
			return nil, fmt.Errorf("%w: pseudo-gradient truncated", ErrRejected)
		}
		v, err := Decompress(c, b[:n], s.Size())
		if err != nil {
			return nil, err
		}
		p.Values[i], b = v, b[n:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes", ErrRejected)
	}
	return p, nil
}
