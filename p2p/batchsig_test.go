package p2p

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Receipts signed together: each verifies as its own, against its own message only, and only
// as the signer's; a list, place or signature changed in any way does not verify.
func TestBatchSignedReceiptsVerifyEachAlone(t *testing.T) {
	hosts := newTestNetwork(t, 2)
	stage, other := hosts[0], hosts[1]
	msgs := [][]byte{[]byte("receipt a"), []byte("receipt b"), []byte("receipt c")}
	batch := make([]*signReq, len(msgs))
	for i, m := range msgs {
		batch[i] = &signReq{msg: m, done: make(chan struct{})}
	}
	stage.signBatch(batch)
	for i, r := range batch {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if _, _, _, ok, err := parseBatchSignature(r.sig); !ok || err != nil {
			t.Fatalf("receipt %d: not a batch signature (%v)", i, err)
		}
		if err := VerifyReceipt(stage.ID(), msgs[i], r.sig); err != nil {
			t.Fatalf("receipt %d: %v", i, err)
		}
		if err := VerifyReceipt(stage.ID(), msgs[(i+1)%3], r.sig); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("receipt %d's signature verified another receipt: %v", i, err)
		}
		if err := VerifyReceipt(other.ID(), msgs[i], r.sig); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("receipt %d verified as another peer's: %v", i, err)
		}
	}
	good := batch[1].sig
	for name, mutate := range map[string]func(b []byte){
		"a digest of the list": func(b []byte) { b[len(batchMagic)+2+5] ^= 1 },
		"the place":            func(b []byte) { b[len(batchMagic)+1] = 0 },
		"a place past the end": func(b []byte) { b[len(batchMagic)+1] = 3 },
		"the count":            func(b []byte) { b[len(batchMagic)] = 17 },
		"the signature":        func(b []byte) { b[len(b)-1] ^= 1 },
	} {
		bad := bytes.Clone(good)
		mutate(bad)
		if err := VerifyReceipt(stage.ID(), msgs[1], bad); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("%s changed: %v", name, err)
		}
	}
	if err := VerifyReceipt(stage.ID(), msgs[1], good[:len(good)-70]); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a cut batch signature: %v", err)
	}
	// One alone is signed plainly.
	one := []*signReq{{msg: msgs[0], done: make(chan struct{})}}
	stage.signBatch(one)
	if _, _, _, ok, _ := parseBatchSignature(one[0].sig); ok || VerifyPeer(stage.ID(), msgs[0], one[0].sig) != nil {
		t.Fatal("a receipt signed alone is not a plain signature")
	}
}

// Sessions answered at the same time share signatures (fewer than one each), and every
// client's receipts verify.
func TestConcurrentAnswersShareSignatures(t *testing.T) {
	server, client, _ := forwardPair(t)
	ctx := context.Background()
	const sessions, steps = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	batched := make(chan int, sessions)
	for range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fc, err := client.OpenForward(ctx, server.ID(), ForwardOpen{Model: "m", First: 0, Last: 1, Batch: 1})
			if err != nil {
				errs <- err
				return
			}
			defer fc.Close()
			for range steps {
				if _, err := fc.Step(ctx, &Tensor{Dims: []int{1, 1, 2}, F32: []float32{1, 2}}); err != nil {
					errs <- err
					return
				}
			}
			n := 0
			for _, r := range fc.Receipts() {
				if err := VerifyReceipt(server.ID(), r.Message(), r.Sig); err != nil {
					errs <- err
					return
				}
				if _, _, _, ok, _ := parseBatchSignature(r.Sig); ok {
					n++
				}
			}
			batched <- n
		}()
	}
	wg.Wait()
	close(errs)
	close(batched)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for n := range batched {
		total += n
	}
	t.Logf("%d of %d answers signed in batches", total, sessions*steps)
}

// groupedSession answers steps that a test says were computed together: each step names the
// computation id (the step's number) of size sessions.
type groupedSession struct {
	step int
	size int
}

func (s *groupedSession) Step(in *Tensor) (*Tensor, error) { s.step++; return in, nil }
func (s *groupedSession) Close()                           {}
func (s *groupedSession) SignGroup() (uint64, int)         { return uint64(s.step), s.size }

// The answers of one batched computation carry one signature over all their receipts, however
// their goroutines interleave; a computation whose other answers never come is signed with
// those that did, after maxGroupWait.
func TestAnswersOfOneComputationShareOneSignature(t *testing.T) {
	hosts := newTestNetwork(t, 2)
	server, client := hosts[0], hosts[1]
	const sessions, steps = 3, 6
	server.ServeForward(func(peer.ID, ForwardOpen) (ForwardSession, error) {
		return &groupedSession{size: sessions}, nil
	})
	// A wait no scheduler outlasts (the race detector on a busy machine spread three
	// answers over more than the 2 ms of production), then a short one.
	server.signer.mu.Lock()
	server.signer.wait = time.Minute
	server.signer.mu.Unlock()
	ctx := context.Background()
	var clients []*ForwardClient
	for range sessions {
		fc, err := client.OpenForward(ctx, server.ID(), ForwardOpen{Model: "m", Last: 1, Batch: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer fc.Close()
		clients = append(clients, fc)
	}
	in := &Tensor{Dims: []int{1, 1, 2}, F32: []float32{1, 2}}
	for step := range steps {
		var wg sync.WaitGroup
		errs := make([]error, sessions)
		for i, fc := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = fc.Step(ctx, in)
			}()
		}
		wg.Wait()
		sigs := map[string]bool{}
		for i, fc := range clients {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			r := fc.Receipts()[step]
			if err := VerifyReceipt(server.ID(), r.Message(), r.Sig); err != nil {
				t.Fatal(err)
			}
			digests, _, sig, ok, err := parseBatchSignature(r.Sig)
			if !ok || err != nil || len(digests) != sessions {
				t.Fatalf("step %d, session %d: a list of %d receipts (%v), want all %d", step, i, len(digests), err, sessions)
			}
			sigs[string(sig)] = true
		}
		if len(sigs) != 1 {
			t.Fatalf("step %d: %d signatures for one computation", step, len(sigs))
		}
	}
	// Two of the three step: they are signed together once the wait is over.
	const wait = 100 * time.Millisecond
	server.signer.mu.Lock()
	server.signer.wait = wait
	server.signer.mu.Unlock()
	start := time.Now()
	var wg sync.WaitGroup
	for _, fc := range clients[:2] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := fc.Step(ctx, in); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, fc := range clients[:2] {
		r := fc.Receipts()[steps]
		if digests, _, _, ok, _ := parseBatchSignature(r.Sig); !ok || len(digests) != 2 || VerifyReceipt(server.ID(), r.Message(), r.Sig) != nil {
			t.Fatalf("a computation's answers that came without the third: %d digests", len(digests))
		}
	}
	if took := time.Since(start); took < wait {
		t.Fatalf("signed after %v, before the wait for the third (%v) was over", took, wait)
	}
}
