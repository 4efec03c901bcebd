package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/internal/peerrate"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
)

// Fraud proofs. A requester whose audit convicts a stage gossips a proof: the stage's signed
// receipt of a session's first steps up to the first wrong answer, the inputs it was sent
// and the outputs it signed. Anyone checks the receipt's signature and digests against those
// bytes (so the accused did answer them), then audits the case as if it were its own: its
// own computation when it holds the span at that version, else two other holders. A proof
// that convicts excludes the accused from this node's routes too; one whose answers turn out
// right excludes its sender, who accused an honest stage.

// FraudTopic is the gossip topic of a model's fraud proofs.
func FraudTopic(model string) string { return "/neuroshard/" + model + "/fraud/2" }

// MaxFraudProof bounds a proof gossiped whole (and the gossip message carrying it). A larger
// one (a long session, a long prompt on a wide model) is announced instead, by its ID and
// size, and fetched from its finder over fraud/get by whoever checks it, up to
// MaxFetchedProof.
const (
	MaxFraudProof   = 768 << 10
	MaxFetchedProof = 64 << 20
)

// keptProofs is how many announced proofs a finder keeps to serve.
const keptProofs = 8

const announceMagic = "nsfa1"

// encodeAnnouncement names a proof too large for gossip: its ID and size.
func encodeAnnouncement(id [32]byte, size int) []byte {
	b := append([]byte(announceMagic), id[:]...)
	return binary.LittleEndian.AppendUint64(b, uint64(size))
}

// decodeAnnouncement reads an announcement (ok false when data is not one, or not a sane one).
func decodeAnnouncement(data []byte) (id [32]byte, size int64, ok bool) {
	if len(data) != len(announceMagic)+40 || !bytes.HasPrefix(data, []byte(announceMagic)) {
		return id, 0, false
	}
	copy(id[:], data[len(announceMagic):])
	v := binary.LittleEndian.Uint64(data[len(announceMagic)+32:])
	return id, int64(v), v > MaxFraudProof && v <= MaxFetchedProof
}

// Proof checks are bounded per sender: one a few seconds, a few at once, one recomputation
// at a time on this node.
const (
	proofEvery = 5 * time.Second
	proofBurst = 2
)

// FraudProof shows a stage's signed answers that differ from what their inputs give.
type FraudProof struct {
	Accused peer.ID
	Receipt p2p.SignedReceipt // the accused's receipt of the last step included
	Steps   []int             // the positions of every step up to it, in order
	In, Out *layers.Tensor    // those steps' inputs and the outputs the accused signed, concatenated
}

// ErrBadProof marks a fraud proof that does not hold together: malformed, not the accused's
// signature, digests that are not those of its tensors, or shapes the model does not have.
var ErrBadProof = errors.New("pipeline: bad fraud proof")

const proofMagic = "nsfp1"

// EncodeFraudProof writes a proof in the gossip's binary form.
func EncodeFraudProof(fp *FraudProof) ([]byte, error) {
	b := []byte(proofMagic)
	str := func(s string) { b = binary.LittleEndian.AppendUint16(b, uint16(len(s))); b = append(b, s...) }
	str(string(fp.Accused))
	r := fp.Receipt
	str(r.Session)
	str(r.Model)
	str(r.Weights)
	b = binary.LittleEndian.AppendUint32(b, uint32(r.Step))
	b = binary.LittleEndian.AppendUint32(b, uint32(r.First))
	b = binary.LittleEndian.AppendUint32(b, uint32(r.Last))
	b = append(b, r.In[:]...)
	b = append(b, r.Out[:]...)
	str(string(r.Sig))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(fp.Steps)))
	for _, s := range fp.Steps {
		b = binary.LittleEndian.AppendUint32(b, uint32(s))
	}
	var err error
	if b, err = p2p.AppendTensor(b, ToWire(fp.In)); err != nil {
		return nil, err
	}
	if b, err = p2p.AppendTensor(b, ToWire(fp.Out)); err != nil {
		return nil, err
	}
	if len(b) > MaxFetchedProof {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadProof, len(b), MaxFetchedProof)
	}
	return b, nil
}

// DecodeFraudProof reads a proof, checking its form only (CheckProof checks what it says).
func DecodeFraudProof(b []byte) (*FraudProof, error) {
	if len(b) > MaxFetchedProof || !bytes.HasPrefix(b, []byte(proofMagic)) {
		return nil, fmt.Errorf("%w: not a fraud proof of at most %d bytes", ErrBadProof, MaxFetchedProof)
	}
	b = b[len(proofMagic):]
	bad := func(what string) (*FraudProof, error) { return nil, fmt.Errorf("%w: %s", ErrBadProof, what) }
	str := func(max int) (string, bool) {
		if len(b) < 2 {
			return "", false
		}
		n := int(binary.LittleEndian.Uint16(b))
		if n > max || len(b) < 2+n {
			return "", false
		}
		s := string(b[2 : 2+n])
		b = b[2+n:]
		return s, true
	}
	u32 := func() (int, bool) {
		if len(b) < 4 {
			return 0, false
		}
		v := binary.LittleEndian.Uint32(b)
		b = b[4:]
		return int(v), v <= math.MaxInt32
	}
	fp := &FraudProof{}
	acc, ok := str(128)
	if !ok {
		return bad("accused")
	}
	id, err := peer.IDFromBytes([]byte(acc))
	if err != nil {
		return bad("accused is not a peer ID")
	}
	fp.Accused = id
	r := &fp.Receipt
	var ok1, ok2, ok3, ok4, ok5, ok6 bool
	r.Session, ok1 = str(64)
	r.Model, ok2 = str(128)
	r.Weights, ok3 = str(64)
	r.Step, ok4 = u32()
	r.First, ok5 = u32()
	r.Last, ok6 = u32()
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || len(b) < 64 {
		return bad("receipt")
	}
	copy(r.In[:], b[:32])
	copy(r.Out[:], b[32:64])
	b = b[64:]
	sig, ok := str(1024)
	if !ok || sig == "" {
		return bad("signature")
	}
	r.Sig = []byte(sig)
	n, ok := u32()
	if !ok || n < 1 || n > len(b)/4 {
		return bad("step count")
	}
	fp.Steps = make([]int, n)
	for i := range fp.Steps {
		fp.Steps[i], _ = u32()
	}
	in, rest, err := p2p.DecodeTensor(b, len(b)/4)
	if err != nil {
		return bad("inputs: " + err.Error())
	}
	out, rest, err := p2p.DecodeTensor(rest, len(rest)/4)
	if err != nil {
		return bad("outputs: " + err.Error())
	}
	if len(rest) != 0 {
		return bad("trailing bytes")
	}
	fp.In, fp.Out = FromWire(in), FromWire(out)
	return fp, nil
}

// CheckProof checks that a proof holds together for this node's model: shapes the span's
// stage takes and gives, one receipt step per listed step, digests that are those of the
// tensors cut into those steps, and the accused's signature. It recomputes nothing.
func (p *Pipeline) CheckProof(fp *FraudProof) error {
	r, m := fp.Receipt, p.model
	switch {
	case r.Model != m.Name:
		return fmt.Errorf("%w: model %.40q, this node runs %s", ErrBadProof, r.Model, m.Name)
	case r.First < 0 || r.Last < r.First || r.Last >= m.Layers:
		return fmt.Errorf("%w: layers %d-%d of a %d-layer model", ErrBadProof, r.First, r.Last, m.Layers)
	case len(r.Weights) != 64 || strings.Trim(r.Weights, "0123456789abcdef") != "":
		return fmt.Errorf("%w: weights %.80q are not a sha256 in hex", ErrBadProof, r.Weights)
	case r.Step != len(fp.Steps) || r.Positions != 0 && r.Positions != fp.Steps[len(fp.Steps)-1]:
		return fmt.Errorf("%w: receipt of step %d for %d steps", ErrBadProof, r.Step, len(fp.Steps))
	}
	total := 0
	for _, s := range fp.Steps {
		if s < 1 || s > m.Context {
			return fmt.Errorf("%w: a step of %d positions", ErrBadProof, s)
		}
		total += s
	}
	if total > m.Context {
		return fmt.Errorf("%w: %d positions, the context is %d", ErrBadProof, total, m.Context)
	}
	inW, outW := m.DModel, m.DModel
	if r.Last == m.Layers-1 {
		outW = m.Vocab
	}
	if r.First == 0 {
		inW = 0 // token IDs
	}
	if err := shaped(fp.In, total, inW, m.Vocab); err != nil {
		return fmt.Errorf("%w: inputs: %v", ErrBadProof, err)
	}
	if err := shaped(fp.Out, total, outW, 0); err != nil {
		return fmt.Errorf("%w: outputs: %v", ErrBadProof, err)
	}
	var in, out p2p.Digest
	at := 0
	for _, s := range fp.Steps {
		ib, err := p2p.AppendTensor(nil, ToWire(positions(fp.In, at, s)))
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadProof, err)
		}
		ob, err := p2p.AppendTensor(nil, ToWire(positions(fp.Out, at, s)))
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadProof, err)
		}
		in, out = p2p.Chain(in, ib), p2p.Chain(out, ob)
		at += s
	}
	if in != r.In || out != r.Out {
		return fmt.Errorf("%w: the receipt's digests are not those of the proof's tensors", ErrBadProof)
	}
	if err := p2p.VerifyReceipt(fp.Accused, r.Message(), r.Sig); err != nil {
		return fmt.Errorf("%w: %v", ErrBadProof, err)
	}
	return nil
}

// shaped checks a batch-1 tensor of n positions: token IDs below vocab when width is 0, else
// float32 values of that width.
func shaped(t *layers.Tensor, n, width, vocab int) error {
	if width == 0 {
		if t.I32 == nil || t.F32 != nil || len(t.Dims) != 2 || t.Dims[0] != 1 || t.Dims[1] != n || len(t.I32) != n {
			return fmt.Errorf("want %d token IDs, have dims %v", n, t.Dims)
		}
		for _, id := range t.I32 {
			if id < 0 || int(id) >= vocab {
				return fmt.Errorf("token ID %d outside the vocabulary", id)
			}
		}
		return nil
	}
	if t.F32 == nil || t.I32 != nil || len(t.Dims) != 3 || t.Dims[0] != 1 || t.Dims[1] != n || t.Dims[2] != width || len(t.F32) != n*width {
		return fmt.Errorf("want [1 %d %d] float32, have dims %v", n, width, t.Dims)
	}
	return nil
}

// positions is positions [at, at+n) of a batch-1 tensor (sharing its data).
func positions(t *layers.Tensor, at, n int) *layers.Tensor {
	w := 1
	for _, d := range t.Dims[2:] {
		w *= d
	}
	dims := append([]int{1, n}, t.Dims[2:]...)
	if t.I32 != nil {
		return &layers.Tensor{Dims: dims, I32: t.I32[at*w : (at+n)*w]}
	}
	return &layers.Tensor{Dims: dims, F32: t.F32[at*w : (at+n)*w]}
}

// proofOf cuts a convicted case down to a proof: the steps up to the first whose answer
// differs from want (what honest holders compute for the case's inputs). It is nil when the
// case has no receipts or no step differs.
func proofOf(c AuditCase, want *layers.Tensor) *FraudProof {
	if len(c.Receipts) == 0 || want == nil || len(want.F32) != len(c.Out.F32) {
		return nil
	}
	w := 1
	for _, d := range c.Out.Dims[2:] {
		w *= d
	}
	first := -1
	for i := range want.F32 {
		if math.Float32bits(want.F32[i]) != math.Float32bits(c.Out.F32[i]) {
			first = i / w
			break
		}
	}
	if first < 0 {
		return nil
	}
	var steps []int
	at := 0
	for _, r := range c.Receipts {
		steps = append(steps, r.Positions)
		at += r.Positions
		if at > first {
			return &FraudProof{Accused: c.Peer, Receipt: r, Steps: steps, In: positions(c.In, 0, at), Out: positions(c.Out, 0, at)}
		}
	}
	return nil
}

// fraudState is the node's side of the fraud gossip.
type fraudState struct {
	mu      sync.Mutex
	topic   *p2p.Topic
	fetch   func(ctx context.Context, p peer.ID, id [32]byte, max int64) ([]byte, error)
	kept    map[[32]byte][]byte // announced proofs this node found, served over fraud/get
	order   [][32]byte          // kept, oldest first
	senders *peerrate.Limiters[peer.ID]
	verify  *semaphore.Weighted
	wg      sync.WaitGroup // proof checks under way
}

// Wait waits for the fraud-proof checks under way (they end with the ctx JoinFraudGossip
// was given).
func (p *Pipeline) Wait() { p.fraud.wg.Wait() }

// Gossiper joins gossip topics and serves and fetches proofs too large for them (the p2p
// host).
type Gossiper interface {
	JoinTopic(name string, max int, validate p2p.GossipValidator, onMessage func(from peer.ID, data []byte)) (*p2p.Topic, error)
	ServeFraudProofs(src p2p.FraudSource)
	GetFraudProof(ctx context.Context, p peer.ID, id [32]byte, max int64) ([]byte, error)
}

// JoinFraudGossip joins the model's fraud-proof topic: proofs that hold together are passed on
// and decided in the background (decideFraud), each sender within its rate. ctx bounds the
// checks.
func (p *Pipeline) JoinFraudGossip(ctx context.Context, g Gossiper) error {
	p.fraud.mu.Lock()
	p.fraud.verify = semaphore.NewWeighted(1)
	p.fraud.fetch = g.GetFraudProof
	p.fraud.kept = map[[32]byte][]byte{}
	p.fraud.mu.Unlock()
	g.ServeFraudProofs(p.keptProof)
	t, err := g.JoinTopic(FraudTopic(p.model.Name), MaxFraudProof, func(from peer.ID, data []byte) bool {
		if _, _, ok := decodeAnnouncement(data); ok {
			return true // the proof is checked once fetched
		}
		fp, err := DecodeFraudProof(data)
		if err == nil {
			err = p.CheckProof(fp)
		}
		if err != nil {
			logger().Debug("fraud proof refused", "from", from, "err", err)
		}
		return err == nil
	}, func(from peer.ID, data []byte) {
		id, size, announced := decodeAnnouncement(data)
		var fp *FraudProof
		if !announced {
			var err error
			if fp, err = DecodeFraudProof(data); err != nil {
				return
			}
		}
		if !p.proofAllowed(from) {
			return
		}
		p.fraud.wg.Go(func() {
			if err := p.fraud.verify.Acquire(ctx, 1); err != nil {
				return
			}
			defer p.fraud.verify.Release(1)
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if announced {
				var err error
				if fp, err = p.fetchProof(cctx, from, id, size); err != nil {
					logger().Info("announced fraud proof not taken", "from", from, "err", err)
					if errors.Is(err, ErrBadProof) {
						// It announced a proof and served other bytes, or a proof that does
						// not hold together: a sender of false proofs.
						p.Exclude(from, "announced a fraud proof and served one that does not hold: "+err.Error())
					}
					return
				}
			}
			res := p.decideFraud(cctx, from, fp) // CheckProof passed on it
			logger().Info("fraud proof checked", "from", from, "accused", fp.Accused, "verdict", res.Verdict, "reason", res.Reason)
			if res.Verdict == VerdictConvicted {
				p.convicted(fp, false)
			}
		})
	})
	if err != nil {
		return err
	}
	p.fraud.mu.Lock()
	p.fraud.topic = t
	p.fraud.mu.Unlock()
	return nil
}

// proofAllowed spends one of a sender's proof checks.
func (p *Pipeline) proofAllowed(from peer.ID) bool {
	p.fraud.mu.Lock()
	if p.fraud.senders == nil {
		p.fraud.senders = peerrate.New[peer.ID](rate.Every(proofEvery), proofBurst)
	}
	senders := p.fraud.senders
	p.fraud.mu.Unlock()
	return senders.Get(from).Allow()
}

// ID names a proof: the SHA-256 of its encoding (one proof, one ID on every node).
func (fp *FraudProof) ID() ([32]byte, error) {
	b, err := EncodeFraudProof(fp)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// convicted tells OnConvicted, in the background (Wait waits for it).
func (p *Pipeline) convicted(fp *FraudProof, mine bool) {
	f := p.onConvict
	if f == nil {
		return
	}
	id, err := fp.ID()
	if err != nil {
		return
	}
	p.fraud.wg.Go(func() {
		if err := f(fp.Accused, id, mine); err != nil {
			logger().Warn("conviction not acted on", "accused", fp.Accused, "err", err)
		}
	})
}

// fetchProof fetches an announced proof from its finder and checks it: its bytes hash to
// the announced ID, it decodes, and it holds together (CheckProof).
func (p *Pipeline) fetchProof(ctx context.Context, from peer.ID, id [32]byte, size int64) (*FraudProof, error) {
	p.fraud.mu.Lock()
	fetch := p.fraud.fetch
	p.fraud.mu.Unlock()
	b, err := fetch(ctx, from, id, size)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != size || sha256.Sum256(b) != id {
		return nil, fmt.Errorf("%w: the fetched proof is not the one announced", ErrBadProof)
	}
	fp, err := DecodeFraudProof(b)
	if err != nil {
		return nil, err
	}
	return fp, p.CheckProof(fp)
}

// keptProof serves a proof this node announced.
func (p *Pipeline) keptProof(_ peer.ID, id [32]byte) ([]byte, error) {
	p.fraud.mu.Lock()
	defer p.fraud.mu.Unlock()
	b, ok := p.fraud.kept[id]
	if !ok {
		return nil, fmt.Errorf("%w: no kept proof %x", ErrBadProof, id[:8])
	}
	return b, nil
}

// PublishProof gossips a fraud proof (once the node joined the topic), whole or, over
// MaxFraudProof, announced and kept to serve, and tells OnConvicted that this node convicted
// by it.
func (p *Pipeline) PublishProof(ctx context.Context, fp *FraudProof) error {
	b, err := EncodeFraudProof(fp)
	if err != nil {
		return err
	}
	p.convicted(fp, true)
	if len(b) > MaxFraudProof {
		id := sha256.Sum256(b)
		p.fraud.mu.Lock()
		if p.fraud.kept != nil {
			if _, ok := p.fraud.kept[id]; !ok {
				p.fraud.kept[id] = b
				p.fraud.order = append(p.fraud.order, id)
			}
			for len(p.fraud.order) > keptProofs {
				delete(p.fraud.kept, p.fraud.order[0])
				p.fraud.order = p.fraud.order[1:]
			}
		}
		p.fraud.mu.Unlock()
		b = encodeAnnouncement(id, len(b))
	}
	p.fraud.mu.Lock()
	t := p.fraud.topic
	p.fraud.mu.Unlock()
	if t == nil {
		return errors.New("pipeline: not on the fraud-proof topic")
	}
	return t.Publish(ctx, b)
}

func proofCase(fp *FraudProof) AuditCase {
	return AuditCase{Peer: fp.Accused, Span: layers.Span{First: fp.Receipt.First, Last: fp.Receipt.Last}, Weights: fp.Receipt.Weights, In: fp.In, Out: fp.Out}
}

// decideFraud decides a proof from sender that CheckProof passed: its case is audited as this
// node's own. Convicted: the accused is excluded. Passed: the accused answered right and the
// sender is excluded for a false accusation.
func (p *Pipeline) decideFraud(ctx context.Context, sender peer.ID, fp *FraudProof) AuditResult {
	c := proofCase(fp)
	if sender == p.host.ID() || fp.Accused == p.host.ID() {
		return AuditResult{Case: c, Verdict: VerdictInconclusive, Reason: "a proof this node sent or one against it"}
	}
	if p.isExcluded(fp.Accused) {
		return AuditResult{Case: c, Verdict: VerdictConvicted, Reason: "excluded already"}
	}
	res := p.audit(ctx, c, false)
	if res.Verdict == VerdictPassed {
		res.Reason = fmt.Sprintf("sent a false fraud proof against %s (its answers for layers %s are right)", fp.Accused, c.Span)
		p.Exclude(sender, res.Reason)
	}
	return res
}
