package p2p

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
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
