package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// scaleSession multiplies by its position count + 1, so a test can see the server keep state
// across steps of one stream.
type scaleSession struct {
	steps  int
	closed *atomic.Int32
}

func (s *scaleSession) Step(in *Tensor) (*Tensor, error) {
	if in.F32 == nil {
		return nil, &RemoteError{Code: "BAD_INPUT", Message: "float32 only"}
	}
	s.steps++
	out := &Tensor{Dims: in.Dims, F32: make([]float32, len(in.F32))}
	for i, x := range in.F32 {
		out.F32[i] = x * float32(s.steps)
	}
	return out, nil
}

func (s *scaleSession) Close() { s.closed.Add(1) }

func forwardPair(t *testing.T) (server, client *Host, closed *atomic.Int32) {
	hosts := newTestNetwork(t, 2)
	closed = &atomic.Int32{}
	hosts[0].ServeForward(func(from peer.ID, req ForwardOpen) (ForwardSession, error) {
		if req.Model != "m" {
			return nil, &RemoteError{Code: "UNKNOWN_MODEL", Message: req.Model}
		}
		return &scaleSession{closed: closed}, nil
	})
	return hosts[0], hosts[1], closed
}

func TestForwardSessionKeepsStateAndFreesOnClose(t *testing.T) {
	server, client, closed := forwardPair(t)
	ctx := context.Background()
	fc, err := client.OpenForward(ctx, server.ID(), ForwardOpen{Model: "m", First: 0, Last: 1, Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	for step := 1; step <= 3; step++ {
		out, err := fc.Step(ctx, &Tensor{Dims: []int{1, 2}, F32: []float32{1, 2}})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(out.F32, []float32{float32(step), float32(2 * step)}) {
			t.Fatalf("step %d: %v", step, out.F32)
		}
	}
	// A step the session refuses is an error for that step; the session goes on.
	if _, err := fc.Step(ctx, &Tensor{Dims: []int{1}, I32: []int32{1}}); err == nil {
		t.Fatal("int input accepted")
	} else if re := (*RemoteError)(nil); !errors.As(err, &re) || re.Code != "BAD_INPUT" {
		t.Fatalf("remote error: %v", err)
	}
	if out, err := fc.Step(ctx, &Tensor{Dims: []int{1}, F32: []float32{1}}); err != nil || out.F32[0] != 4 {
		t.Fatalf("after an error: %v %v", out, err)
	}
	fc.Close()
	waitFor(t, 5*time.Second, "the server to free the session", func() bool { return closed.Load() == 1 })
	if server.Traffic().ForwardSteps != 4 {
		t.Fatalf("forward steps served: %d", server.Traffic().ForwardSteps)
	}
	if _, err := client.OpenForward(ctx, server.ID(), ForwardOpen{Model: "other"}); err == nil {
		t.Fatal("unknown model accepted")
	} else if re := (*RemoteError)(nil); !errors.As(err, &re) || re.Code != "UNKNOWN_MODEL" {
		t.Fatalf("open error: %v", err)
	}
}

// A peer that sends garbage or an oversized frame is cut off; the server keeps serving others.
func TestForwardCutsOffGarbage(t *testing.T) {
	server, client, closed := forwardPair(t)
	ctx := context.Background()
	for name, send := range map[string][]byte{
		"not a frame":     []byte("GET / HTTP/1.1\r\n\r\n"),
		"oversized frame": binary.LittleEndian.AppendUint32([]byte{frameOpen}, 1<<31),
	} {
		s, err := client.Libp2p().NewStream(ctx, server.ID(), ProtocolForward)
		if err != nil {
			t.Fatal(err)
		}
		s.Write(send)
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 16)
		if n, err := s.Read(buf); err == nil {
			t.Fatalf("%s: server answered %q instead of cutting off", name, buf[:n])
		}
		s.Reset()
	}
	// A valid session whose step carries a tensor announcing more values than it holds.
	fc, err := client.OpenForward(ctx, server.ID(), ForwardOpen{Model: "m", Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := AppendTensor(nil, &Tensor{Dims: []int{2}, F32: []float32{1, 2}})
	WriteFrame(fc.s, frameStep, bad[:len(bad)-4])
	if _, _, err := ReadFrame(fc.s, 1024); err == nil {
		t.Fatal("malformed tensor answered")
	}
	waitFor(t, 5*time.Second, "the cut-off session to be freed", func() bool { return closed.Load() == 1 })
	// The server still serves a well-behaved client.
	good, err := client.OpenForward(ctx, server.ID(), ForwardOpen{Model: "m", Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if _, err := good.Step(ctx, &Tensor{Dims: []int{1}, F32: []float32{3}}); err != nil {
		t.Fatal(err)
	}
}

// A client that resets its stream before the OPENED reply used to leak the session it asked
// for: its slot and cache outlived the stream. Every session opened is now closed.
func TestSessionResetBeforeOpenedIsFreed(t *testing.T) {
	hosts := newTestNetwork(t, 2)
	server, client := hosts[0], hosts[1]
	var opened, closed atomic.Int32
	reset := make(chan struct{})
	server.ServeForward(func(from peer.ID, req ForwardOpen) (ForwardSession, error) {
		opened.Add(1)
		<-reset // answer only once the client is gone
		return &scaleSession{closed: &closed}, nil
	})
	ctx := context.Background()
	const n = 5
	for i := 0; i < n; i++ {
		s, err := client.Libp2p().NewStream(ctx, server.ID(), ProtocolForward)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := jsonBytes(ForwardOpen{Model: "m", Batch: 1})
		if err := WriteFrame(s, frameOpen, b); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the server to open the session", func() bool { return opened.Load() == int32(i+1) })
		s.Reset()
		time.Sleep(50 * time.Millisecond) // let the reset reach the server
		reset <- struct{}{}
	}
	waitFor(t, 10*time.Second, "every session opened for a reset stream to be closed", func() bool { return closed.Load() == n })
}

// A frame header that claims a large payload costs what actually arrives, not the claim.
func TestFrameClaimIsNotAllocatedUpFront(t *testing.T) {
	hdr := binary.LittleEndian.AppendUint32([]byte{frameStep}, 60<<20)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 16; i++ {
		if _, _, err := ReadFrame(bytes.NewReader(append(hdr, make([]byte, 100)...)), MaxForwardFrame); !errors.Is(err, ErrFrame) {
			t.Fatalf("truncated frame: %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Fatalf("16 headers claiming 60 MiB each allocated %d bytes", got)
	}
	// A whole frame larger than one read piece still arrives intact.
	payload := make([]byte, 3*readPiece+17)
	for i := range payload {
		payload[i] = byte(i)
	}
	var buf bytes.Buffer
	WriteFrame(&buf, frameStep, payload)
	typ, got, err := ReadFrame(iotest.OneByteReader(&buf), MaxForwardFrame)
	if err != nil || typ != frameStep || !bytes.Equal(got, payload) {
		t.Fatalf("frame of %d bytes: type %d, %d bytes, %v", len(payload), typ, len(got), err)
	}
}

// Every answer carries the stage's signed receipt of the session so far: the client checks
// it, keeps it, and its chained digests are those of the bytes that travelled; a receipt with
// any field changed no longer verifies.
func TestForwardAnswersCarrySignedReceipts(t *testing.T) {
	server, client, _ := forwardPair(t)
	ctx := context.Background()
	fc, err := client.OpenForward(ctx, server.ID(), ForwardOpen{Model: "m", First: 2, Last: 3, Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	var in, out Digest
	for step := 1; step <= 3; step++ {
		x := &Tensor{Dims: []int{1, step, 2}, F32: make([]float32, 2*step)}
		for i := range x.F32 {
			x.F32[i] = float32(i + step)
		}
		y, err := fc.Step(ctx, x)
		if err != nil {
			t.Fatal(err)
		}
		xb, _ := AppendTensor(nil, x)
		yb, _ := AppendTensor(nil, y)
		in, out = Chain(in, xb), Chain(out, yb)
	}
	fc.Close()
	rs := fc.Receipts()
	if len(rs) != 3 {
		t.Fatalf("%d receipts for 3 steps", len(rs))
	}
	last := rs[2]
	if last.Step != 3 || last.In != in || last.Out != out || last.Model != "m" || last.First != 2 || last.Last != 3 || last.Positions != 3 || len(last.Session) != 32 {
		t.Fatalf("last receipt: %+v", last.Receipt)
	}
	for _, r := range rs {
		if err := VerifyPeer(server.ID(), r.Message(), r.Sig); err != nil {
			t.Fatalf("step %d: %v", r.Step, err)
		}
	}
	forged := last.Receipt
	forged.Out[0] ^= 1
	if err := VerifyPeer(server.ID(), forged.Message(), last.Sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a receipt with another output digest verified: %v", err)
	}
	if err := VerifyPeer(client.ID(), last.Message(), last.Sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("the server's signature verified as the client's: %v", err)
	}
}

// A stage whose answer is not signed by its own key (here: by another peer's) is refused:
// the client gets an error, never the tensor.
func TestForwardRefusesAnAnswerSignedByAnotherKey(t *testing.T) {
	hosts := newTestNetwork(t, 3)
	server, client, other := hosts[0], hosts[1], hosts[2]
	server.Libp2p().SetStreamHandler(ProtocolForward, func(s network.Stream) {
		defer s.Close()
		req, err := readOpen(s)
		if err != nil {
			return
		}
		writeJSONFrame(s, frameOpened, ForwardOpened{First: req.First, Last: req.Last})
		_, payload, err := ReadFrame(s, MaxForwardFrame)
		if err != nil {
			return
		}
		buf, _ := AppendTensor(nil, &Tensor{Dims: []int{1, 1}, F32: []float32{7}})
		rc := Receipt{Session: req.Session, Step: 1, Model: req.Model, First: req.First, Last: req.Last, In: Chain(Digest{}, payload), Out: Chain(Digest{}, buf)}
		sig, _ := other.Sign(rc.Message())
		WriteFrame(s, frameOutput, appendSigned(sig, buf))
	})
	ctx := context.Background()
	fc, err := client.OpenForward(ctx, server.ID(), ForwardOpen{Model: "m", First: 0, Last: 0, Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	if out, err := fc.Step(ctx, &Tensor{Dims: []int{1, 1}, F32: []float32{1}}); !errors.Is(err, ErrBadSignature) || out != nil {
		t.Fatalf("an answer signed by another key: %v %v", out, err)
	}
	if len(fc.Receipts()) != 0 {
		t.Fatal("a receipt that does not verify was kept")
	}
}
