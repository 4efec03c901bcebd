package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A proof too large for gossip travels over fraud/get in data frames; a size over the
// fetcher's bound is refused from the head, before any data; an unknown ID is the server's
// error.
func TestFraudProofsTravelOverFraudGet(t *testing.T) {
	hs := newTestNetwork(t, 2)
	server, client := hs[0], hs[1]
	proof := bytes.Repeat([]byte("fraud proof bytes "), 200_000) // 3.6 MB: four data frames
	id := sha256.Sum256(proof)
	server.ServeFraudProofs(func(_ peer.ID, want [32]byte) ([]byte, error) {
		if want != id {
			return nil, errors.New("no such proof")
		}
		return proof, nil
	})
	ctx := context.Background()
	got, err := client.GetFraudProof(ctx, server.ID(), id, 8<<20)
	if err != nil || !bytes.Equal(got, proof) {
		t.Fatalf("fetched %d bytes, %v", len(got), err)
	}
	if _, err := client.GetFraudProof(ctx, server.ID(), id, 1<<20); !errors.Is(err, ErrFrame) {
		t.Fatalf("a proof over the bound: %v", err)
	}
	var re *RemoteError
	if _, err := client.GetFraudProof(ctx, server.ID(), [32]byte{1}, 8<<20); !errors.As(err, &re) {
		t.Fatalf("an unknown proof: %v", err)
	}
}
