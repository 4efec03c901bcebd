package pipeline

import (
	"context"
	"crypto/sha256"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// signedCase is a stage's session as a requester keeps it: a prompt of 3 positions then two
// single steps on layers 1-2 of the tiny model, each answer signed by the stage's key.
func signedCase(t *testing.T, m layers.Config) (AuditCase, crypto.PrivKey) {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := AuditCase{Peer: id, Span: layers.Span{First: 1, Last: 2}, Weights: strings.Repeat("ab", 32)}
	rc := p2p.Receipt{Session: "00112233445566778899aabbccddeeff", Model: m.Name, First: 1, Last: 2, Weights: c.Weights}
	for i, n := range []int{3, 1, 1} {
		in := &layers.Tensor{Dims: []int{1, n, m.DModel}, F32: make([]float32, n*m.DModel)}
		out := &layers.Tensor{Dims: []int{1, n, m.DModel}, F32: make([]float32, n*m.DModel)}
		for j := range in.F32 {
			in.F32[j], out.F32[j] = float32(i+j)/7, float32(i*j)/5
		}
		ib, _ := p2p.AppendTensor(nil, ToWire(in))
		ob, _ := p2p.AppendTensor(nil, ToWire(out))
		rc.Step++
		rc.In, rc.Out = p2p.Chain(rc.In, ib), p2p.Chain(rc.Out, ob)
		sig, err := key.Sign(rc.Message())
		if err != nil {
			t.Fatal(err)
		}
		c.Receipts = append(c.Receipts, p2p.SignedReceipt{Receipt: rc, Positions: n, Sig: sig})
		c.In, c.Out = appendSeq(c.In, in), appendSeq(c.Out, out)
	}
	return c, key
}

// A proof is cut at the first step whose answer differs from the honest one, survives its
// encoding, and holds together; change any part of it and it no longer does.
func TestFraudProofHoldsTogetherOnlyAsSigned(t *testing.T) {
	m := tiny(t)
	p := New(Config{Model: m})
	c, _ := signedCase(t, m)
	want := &layers.Tensor{Dims: append([]int{}, c.Out.Dims...), F32: append([]float32{}, c.Out.F32...)}
	want.F32[3*m.DModel+5] += 1 // the stage's 4th position (its 2nd step) was wrong
	fp := proofOf(c, want)
	if fp == nil || len(fp.Steps) != 2 || fp.Receipt.Step != 2 || fp.In.Dims[1] != 4 || fp.Out.Dims[1] != 4 {
		t.Fatalf("proof of a wrong 2nd step: %+v", fp)
	}
	if proofOf(c, c.Out) != nil {
		t.Fatal("a proof of answers that are right")
	}
	b, err := EncodeFraudProof(fp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeFraudProof(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckProof(got); err != nil {
		t.Fatalf("a proof as signed: %v", err)
	}
	other, _ := signedCase(t, m)
	for name, spoil := range map[string]func(fp *FraudProof){
		"an output changed":     func(fp *FraudProof) { fp.Out.F32[0] = 42 },
		"an input changed":      func(fp *FraudProof) { fp.In.F32[1] = 42 },
		"steps cut differently": func(fp *FraudProof) { fp.Steps = []int{2, 2} },
		"another accused":       func(fp *FraudProof) { fp.Accused = other.Peer },
		"another version":       func(fp *FraudProof) { fp.Receipt.Weights = strings.Repeat("cd", 32) },
		"a layer past the model": func(fp *FraudProof) {
			fp.Receipt.Last = m.Layers
		},
		"a step missing": func(fp *FraudProof) { fp.Steps = fp.Steps[:1] },
		"wrong width": func(fp *FraudProof) {
			fp.Out = &layers.Tensor{Dims: []int{1, 4, 1}, F32: fp.Out.F32[:4]}
		},
	} {
		fp, _ := DecodeFraudProof(b)
		spoil(fp)
		if err := p.CheckProof(fp); !errors.Is(err, ErrBadProof) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for i := range len(b) {
		if _, err := DecodeFraudProof(b[:i]); err == nil {
			t.Fatalf("a proof cut to %d of %d bytes decoded", i, len(b))
		}
	}
}

// No bytes make the proof decoder or checker panic, and what they accept re-encodes.
func FuzzDecodeFraudProof(f *testing.F) {
	m, err := layers.Preset("neuroshard-tiny")
	if err != nil {
		f.Fatal(err)
	}
	var tt testing.T
	c, _ := signedCase(&tt, m)
	want := &layers.Tensor{Dims: c.Out.Dims, F32: make([]float32, len(c.Out.F32))}
	if b, err := EncodeFraudProof(proofOf(c, want)); err == nil {
		f.Add(b)
	}
	f.Add([]byte(proofMagic))
	p := New(Config{Model: m})
	f.Add(encodeAnnouncement([32]byte{7}, MaxFraudProof+1))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, size, ok := decodeAnnouncement(b); ok && (size <= MaxFraudProof || size > MaxFetchedProof) {
			t.Fatalf("an announcement of %d bytes taken", size)
		}
		fp, err := DecodeFraudProof(b)
		if err != nil {
			return
		}
		if p.CheckProof(fp) == nil {
			for _, x := range fp.Out.F32 {
				if math.IsNaN(float64(x)) {
					t.Fatal("a proof with NaN held together")
				}
			}
		}
		if _, err := EncodeFraudProof(fp); err != nil && len(b) <= MaxFraudProof {
			t.Fatalf("a decoded proof does not encode: %v", err)
		}
	})
}

// A proof over MaxFraudProof is kept by its finder and announced by ID and size; a checker
// fetches it, and takes it only if its bytes hash to the ID and it holds together.
func TestLargeProofIsAnnouncedKeptAndFetchedWhole(t *testing.T) {
	m := tiny(t)
	p := New(Config{Model: m})
	c, _ := signedCase(t, m)
	want := &layers.Tensor{Dims: append([]int{}, c.Out.Dims...), F32: append([]float32{}, c.Out.F32...)}
	want.F32[3*m.DModel+5] += 1
	fp := proofOf(c, want)
	b, err := EncodeFraudProof(fp)
	if err != nil {
		t.Fatal(err)
	}
	id := sha256.Sum256(b)
	if got, _ := fp.ID(); got != id {
		t.Fatal("a proof's ID is not the hash of its encoding")
	}
	// The announcement round-trips; sizes gossip takes whole, or past the fetch bound, are
	// not announcements.
	if gid, size, ok := decodeAnnouncement(encodeAnnouncement(id, MaxFraudProof+1)); !ok || gid != id || size != MaxFraudProof+1 {
		t.Fatalf("announcement: %x %d %v", gid, size, ok)
	}
	for _, size := range []int{len(b), MaxFraudProof, MaxFetchedProof + 1} {
		if _, _, ok := decodeAnnouncement(encodeAnnouncement(id, size)); ok {
			t.Fatalf("an announcement of %d bytes taken", size)
		}
	}
	// The checker's side: the right bytes are taken, others not.
	serve := func(data []byte) {
		p.fraud.fetch = func(context.Context, peer.ID, [32]byte, int64) ([]byte, error) { return data, nil }
	}
	serve(b)
	got, err := p.fetchProof(context.Background(), fp.Accused, id, int64(len(b)))
	if err != nil || got.Receipt.Step != fp.Receipt.Step {
		t.Fatalf("fetching the announced proof: %v", err)
	}
	forged := append([]byte{}, b...)
	forged[len(forged)-3] ^= 1
	serve(forged)
	if _, err := p.fetchProof(context.Background(), fp.Accused, id, int64(len(b))); !errors.Is(err, ErrBadProof) {
		t.Fatalf("bytes that are not the announced proof: %v", err)
	}
	// The finder's side: a proof over MaxFraudProof is kept to serve (the newest keptProofs).
	big := &FraudProof{Accused: fp.Accused, Receipt: fp.Receipt, Steps: fp.Steps,
		In: &layers.Tensor{Dims: []int{1, 4000, 64}, F32: make([]float32, 4000*64)}, Out: fp.Out}
	p.fraud.kept = map[[32]byte][]byte{}
	if err := p.PublishProof(context.Background(), big); err == nil {
		t.Fatal("published with no topic")
	}
	bigID, _ := big.ID()
	if served, err := p.keptProof("", bigID); err != nil || len(served) <= MaxFraudProof {
		t.Fatalf("the large proof is not kept to serve: %d bytes, %v", len(served), err)
	}
	if _, err := p.keptProof("", id); err == nil {
		t.Fatal("a proof never announced is served")
	}
}
