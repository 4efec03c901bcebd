package p2p

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// The forward protocol: a client opens a stream per inference session, sends OPEN naming the
// model and the layer span it wants run, then STEP frames with the activations (or token IDs)
// of new positions; each is answered by OUTPUT or ERROR. The stage keeps the session's KV
// cache for the life of the stream: closing the stream, or leaving it idle past
// ForwardIdleTimeout, frees it. Every OUTPUT carries the stage's signature of a Receipt
// (receipt.go) covering the session so far; a client checks it before using the answer.
const (
	frameOpen   byte = 1 // client: ForwardOpen (JSON)
	frameOpened byte = 2 // server: ForwardOpened (JSON)
	frameStep   byte = 3 // client: tensor
	frameOutput byte = 4 // server: signature length (uint16), signature, tensor
	frameError  byte = 5 // server: RemoteError (JSON)

	// MaxForwardFrame bounds one frame (a [64, 512, 512] float32 activation is 64 MiB).
	MaxForwardFrame = 64 << 20
	// maxForwardElems bounds the values of one tensor.
	maxForwardElems = MaxForwardFrame / 4
	// maxControlFrame bounds the JSON frames.
	maxControlFrame = 4 << 10
	// ForwardOpenTimeout bounds how long a new stream may take to say what it wants.
	ForwardOpenTimeout = 10 * time.Second
	// ForwardIdleTimeout frees a session whose client sends nothing for this long.
	ForwardIdleTimeout = 2 * time.Minute
	// ForwardStepTimeout bounds one step as the client sees it (the stage's compute included).
	ForwardStepTimeout = 60 * time.Second
)

// ForwardOpen asks a peer to run a span of a model for one session.
type ForwardOpen struct {
	Model string `json:"model"`
	First int    `json:"first"`
	Last  int    `json:"last"`
	Batch int    `json:"batch"`
	// Session is the requester's nonce (32 hex digits) that the stage's receipts name.
	Session string `json:"session,omitempty"`
}

// ForwardOpened confirms a session. Weights names the version the stage runs: the sha256 (hex)
// of the span's weights, pinned for the session's life, so that a requester can have the
// stage's answers checked by another holder of the same version.
type ForwardOpened struct {
	First   int    `json:"first"`
	Last    int    `json:"last"`
	Weights string `json:"weights,omitempty"`
}

// Versioned is a session that names the weights it runs (ForwardOpened.Weights).
type Versioned interface{ WeightsHash() string }

// RemoteError is an error a peer reported; Code is machine-readable.
type RemoteError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// RetryAfter, on a BUSY refusal, is how long the peer asks to wait (seconds) before the
	// same request would be taken.
	RetryAfter float64 `json:"retry_after,omitempty"`
}

func (e *RemoteError) Error() string { return fmt.Sprintf("remote %s: %s", e.Code, e.Message) }

// ForwardSession is what a node runs for one forward stream.
type ForwardSession interface {
	Step(in *Tensor) (*Tensor, error)
	Close()
}

// ForwardHandler opens a session for a request; an error is sent to the client as a
// RemoteError (use *RemoteError to choose the code).
type ForwardHandler func(from peer.ID, req ForwardOpen) (ForwardSession, error)

// ServeForward registers the forward protocol's handler.
func (n *Host) ServeForward(h ForwardHandler) {
	n.h.SetStreamHandler(ProtocolForward, func(s network.Stream) { n.handleForward(s, h) })
}

func writeJSONFrame(s network.Stream, typ byte, v any) error {
	b, err := jsonBytes(v)
	if err != nil {
		return err
	}
	return WriteFrame(s, typ, b)
}

func jsonBytes(v any) ([]byte, error) { return json.Marshal(v) }

func remoteErr(err error) *RemoteError {
	var re *RemoteError
	if errors.As(err, &re) {
		return re
	}
	return &RemoteError{Code: "STEP_FAILED", Message: err.Error()}
}

func (n *Host) handleForward(s network.Stream, h ForwardHandler) {
	sess, req, ok := acceptSession(s, h)
	if !ok {
		return
	}
	defer sess.Close()
	rc := Receipt{Session: req.Session, Model: req.Model, First: req.First, Last: req.Last}
	if v, ok := sess.(Versioned); ok {
		rc.Weights = v.WeightsHash()
	}
	serveFrames(s, s.Conn().RemotePeer(), func(typ byte, payload []byte) (byte, []byte, error) {
		if typ != frameStep {
			return 0, nil, fmt.Errorf("%w: frame type %d on a forward stream", ErrFrame, typ)
		}
		in, err := readOnlyTensor(payload)
		if err != nil {
			return 0, nil, err
		}
		out, err := sess.Step(in)
		if err != nil {
			return 0, nil, err
		}
		n.forwardSteps.Add(1)
		buf, err := AppendTensor(make([]byte, 0, 6+4*len(out.Dims)+4*(len(out.F32)+len(out.I32))), out)
		if err != nil {
			return 0, nil, err
		}
		rc.Step++
		rc.In, rc.Out = Chain(rc.In, payload), Chain(rc.Out, buf)
		id, size := uint64(0), 1
		if g, ok := sess.(SignGroup); ok {
			id, size = g.SignGroup()
		}
		sig, err := n.signReceiptIn(rc.Message(), id, size)
		if err != nil {
			return 0, nil, err
		}
		return frameOutput, appendSigned(sig, buf), nil
	})
}

// ForwardClient is the client side of one forward session.
type ForwardClient struct {
	s        network.Stream
	peer     peer.ID
	weights  string
	last     Receipt         // the receipt of the last step, as this client computed it
	receipts []SignedReceipt // the stage's signed receipt of every step
}

// Weights is the version of the weights the stage said it runs ("" if it named none).
func (c *ForwardClient) Weights() string { return c.weights }

// OpenForward opens a session on a peer.
func (n *Host) OpenForward(ctx context.Context, p peer.ID, req ForwardOpen) (*ForwardClient, error) {
	if req.Session == "" {
		req.Session = newSessionID()
	}
	s, opened, err := n.openSession(ctx, p, ProtocolForward, req)
	if err != nil {
		return nil, err
	}
	rc := Receipt{Session: req.Session, Model: req.Model, First: req.First, Last: req.Last, Weights: opened.Weights}
	return &ForwardClient{s: s, peer: p, weights: opened.Weights, last: rc}, nil
}

// openSession opens a session stream of a protocol: OPEN, then OPENED or a refusal. On any
// failure the stream is closed.
func (n *Host) openSession(ctx context.Context, p peer.ID, proto protocol.ID, req ForwardOpen) (network.Stream, ForwardOpened, error) {
	var opened ForwardOpened
	octx, cancel := context.WithTimeout(ctx, ForwardOpenTimeout)
	defer cancel()
	s, err := n.newStream(octx, p, proto)
	if err != nil {
		return nil, opened, fmt.Errorf("p2p: open %s stream to %s: %w", proto, p, err)
	}
	buf, err := jsonBytes(req)
	var reply []byte
	if err == nil {
		reply, err = call(s, time.Now().Add(ForwardOpenTimeout), frameOpen, buf, frameOpened)
	}
	if err == nil {
		err = decodeOpened(reply, &opened)
	}
	if err != nil {
		s.Close() // call has reset it already on a transport failure
		return nil, opened, fmt.Errorf("p2p: session open on %s: %w", p, err)
	}
	return s, opened, nil
}

// decodeOpened reads an OPENED reply: a bounded JSON object whose weights, if named, are a
// sha256 in hex.
func decodeOpened(b []byte, o *ForwardOpened) error {
	if len(b) > maxControlFrame {
		return fmt.Errorf("%w: OPENED of %d bytes", ErrFrame, len(b))
	}
	if err := json.Unmarshal(b, o); err != nil {
		return fmt.Errorf("%w: OPENED: %v", ErrFrame, err)
	}
	if h, err := hex.DecodeString(o.Weights); o.Weights != "" && (err != nil || len(h) != 32) {
		return fmt.Errorf("%w: OPENED names weights %.80q, not a sha256", ErrFrame, o.Weights)
	}
	return nil
}

// Peer is the peer running the session.
func (c *ForwardClient) Peer() peer.ID { return c.peer }

// Step sends the inputs of new positions and returns the stage's outputs, once their
// receipt's signature verifies against the stage's peer ID.
func (c *ForwardClient) Step(ctx context.Context, in *Tensor) (*Tensor, error) {
	buf, err := AppendTensor(nil, in)
	if err != nil {
		return nil, err
	}
	reply, err := call(c.s, stepDeadline(ctx), frameStep, buf, frameOutput)
	if err != nil {
		return nil, fmt.Errorf("p2p: forward step on %s: %w", c.peer, err)
	}
	sig, tb, err := splitSigned(reply)
	var out *Tensor
	if err == nil {
		out, err = readOnlyTensor(tb)
	}
	rc := c.last
	if err == nil {
		rc.Step++
		rc.In, rc.Out = Chain(rc.In, buf), Chain(rc.Out, tb)
		err = VerifyReceipt(c.peer, rc.Message(), sig)
	}
	if err != nil {
		c.s.Reset()
		return nil, fmt.Errorf("p2p: bad output from %s: %w", c.peer, err)
	}
	positions := 1
	for _, d := range in.Dims[:min(2, len(in.Dims))] {
		positions *= d
	}
	c.last = rc
	c.receipts = append(c.receipts, SignedReceipt{Receipt: rc, Positions: positions, Sig: sig})
	return out, nil
}

// Receipts are the stage's signed receipts of the session's steps so far, in order (still
// there after Close).
func (c *ForwardClient) Receipts() []SignedReceipt { return slices.Clone(c.receipts) }

// stepDeadline is ForwardStepTimeout from now, or the context's deadline if sooner.
func stepDeadline(ctx context.Context) time.Time {
	deadline := time.Now().Add(ForwardStepTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return deadline
}

// Close ends the session; the peer frees its cache.
func (c *ForwardClient) Close() error { return c.s.Close() }
