package p2p

import (
	"bytes"
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// signedRecord signs r with a fresh key, as SetRecord does.
func signedRecord(t testing.TB, r PeerRecord) (PeerRecord, crypto.PrivKey) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	r.Peer = id
	sig, err := k.Sign(r.message())
	if err != nil {
		t.Fatal(err)
	}
	r.Sig = sig
	return r, k
}

func sampleRecord() PeerRecord {
	return PeerRecord{Seq: 1, Model: "neuroshard-small", First: 2, Last: 5, MemoryBytes: 8 << 30, UsedBytes: 7 << 20,
		Backend: "neuroshard", Threads: 2, Throughput: Throughput{Forward: 9000.5, Train: 3000, Decode: 600, DecodeBatch8: 2300, Prefill: 8000}}
}

func TestPeerRecordRoundTripAndChecks(t *testing.T) {
	r, k := signedRecord(t, sampleRecord())
	got, err := DecodePeerRecord(r.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.Peer != r.Peer || got.Model != r.Model || got.First != 2 || got.Last != 5 || got.Throughput != r.Throughput ||
		got.MemoryBytes != r.MemoryBytes || got.UsedBytes != r.UsedBytes || got.Threads != 2 || got.Backend != r.Backend {
		t.Fatalf("round trip: %+v, want %+v", got, r)
	}
	v := peerRecordValidator{}
	if err := v.Validate(PeerRecordKey(r.Peer), r.Encode()); err != nil {
		t.Fatal(err)
	}
	// Under another peer's key: refused (a peer cannot speak for another).
	other, _ := signedRecord(t, sampleRecord())
	if err := v.Validate(PeerRecordKey(other.Peer), r.Encode()); !errors.Is(err, ErrPeerRecord) {
		t.Fatalf("record under another key: %v", err)
	}
	// Any changed byte breaks the signature or a check.
	enc := r.Encode()
	for i := len(peerRecordTag); i < len(enc); i += 7 {
		bad := bytes.Clone(enc)
		bad[i] ^= 0x40
		if _, err := DecodePeerRecord(bad); err == nil {
			t.Fatalf("byte %d changed: accepted", i)
		}
	}
	// Fields out of range are refused even when signed by their peer.
	for name, mut := range map[string]func(*PeerRecord){
		"NaN throughput":     func(r *PeerRecord) { r.Throughput.Decode = math.NaN() },
		"huge throughput":    func(r *PeerRecord) { r.Throughput.Forward = 1e12 },
		"negative":           func(r *PeerRecord) { r.Throughput.Train = -1 },
		"inverted span":      func(r *PeerRecord) { r.First, r.Last = 5, 2 },
		"no model":           func(r *PeerRecord) { r.Model = "" },
		"negative memory":    func(r *PeerRecord) { r.MemoryBytes = -1 },
		"sequence 0":         func(r *PeerRecord) { r.Seq = 0 },
		"half an empty span": func(r *PeerRecord) { r.First, r.Last = -1, 3 },
	} {
		rec := sampleRecord()
		mut(&rec)
		bad, _ := signedRecord(t, rec)
		if _, err := DecodePeerRecord(bad.Encode()); !errors.Is(err, ErrPeerRecord) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The newest valid record wins; invalid ones never do.
	newer := r
	newer.Seq = 7
	newer.Sig, _ = k.Sign(newer.message())
	forged := newer
	forged.Seq = 99 // the signature no longer covers it
	i, err := v.Select(PeerRecordKey(r.Peer), [][]byte{r.Encode(), forged.Encode(), newer.Encode()})
	if err != nil || i != 2 {
		t.Fatalf("select: %d %v", i, err)
	}
	if _, err := DecodePeerRecord(make([]byte, MaxPeerRecord+1)); !errors.Is(err, ErrPeerRecord) {
		t.Fatalf("oversized record: %v", err)
	}
}

func FuzzDecodePeerRecord(f *testing.F) {
	r, _ := signedRecord(f, sampleRecord())
	f.Add(r.Encode())
	f.Add([]byte(peerRecordTag))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := DecodePeerRecord(b)
		if err != nil {
			return
		}
		// Whatever decodes is in range, verifies, and encodes back to the same bytes.
		if rec.check() != nil || !bytes.Equal(rec.Encode(), b) {
			t.Fatalf("accepted %x as %+v", b, rec)
		}
	})
}

func TestPeerRecordsAreFoundThroughTheDHT(t *testing.T) {
	hosts := newTestNetwork(t, 3)
	waitFor(t, 10*time.Second, "routing tables", func() bool { return len(hosts[2].RoutingTable()) == 2 })
	want := sampleRecord()
	if err := hosts[1].SetRecord(want); err != nil {
		t.Fatal(err)
	}
	var got PeerRecord
	waitFor(t, 10*time.Second, "host 2 to find host 1's record", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r, err := hosts[2].PeerRecord(ctx, hosts[1].ID())
		got = r
		return err == nil
	})
	if got.Peer != hosts[1].ID() || got.Throughput != want.Throughput || got.First != 2 || got.Last != 5 {
		t.Fatalf("record found: %+v", got)
	}
	// A new record replaces it everywhere.
	want.Throughput.Decode = 1234
	if err := hosts[1].SetRecord(want); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the newer record", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r, err := hosts[2].PeerRecord(ctx, hosts[1].ID())
		return err == nil && r.Throughput.Decode == 1234 && r.Seq > got.Seq
	})
	// A forged record (host 0 signing one that names host 1) is refused by the DHT itself.
	forged := want
	forged.Peer, forged.Seq = hosts[1].ID(), uint64(time.Now().Add(time.Hour).UnixNano())
	forged.Throughput.Decode = 1e8
	forged.Sig, _ = hosts[0].Sign(forged.message())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := hosts[0].dht.PutValue(ctx, PeerRecordKey(hosts[1].ID()), forged.Encode()); err == nil {
		t.Fatal("the DHT stored a forged record")
	}
	// The forged record is never served; a lookup may still meet a peer that kept the first
	// record (a put reaches the closest peers, not every one), so the newest is waited for.
	waitFor(t, 10*time.Second, "the newest record after a forgery", func() bool {
		lctx, lcancel := context.WithTimeout(context.Background(), time.Second)
		defer lcancel()
		r, err := hosts[2].PeerRecord(lctx, hosts[1].ID())
		if err == nil && r.Throughput.Decode == forged.Throughput.Decode {
			t.Fatalf("the forged record was served: %+v", r)
		}
		return err == nil && r.Throughput.Decode == 1234
	})
	// A node knows its own record without a lookup; one it never set is an error.
	if r, err := hosts[1].PeerRecord(ctx, hosts[1].ID()); err != nil || r.Throughput.Decode != 1234 {
		t.Fatalf("own record: %+v %v", r, err)
	}
	if _, err := hosts[0].PeerRecord(ctx, hosts[0].ID()); err == nil {
		t.Fatal("a record never set was found")
	}
}
