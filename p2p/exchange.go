package p2p

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The exchange-gradient protocol (/neuroshard/exchange-gradient/2.0.0, the mirror of the
// seed's ExchangeGradient): a replica of a span sends its round's pseudo-gradient to the
// round's aggregator and waits for the round's result, which carries the aggregated
// pseudo-gradient every replica applies. Request and answer are each one frame: a JSON header
// (length-prefixed) and a blob the node encodes.
const (
	frameExchange       byte = 11
	frameExchangeResult byte = 12
	frameCheckpointGet  byte = 13
	frameCheckpointHead byte = 14
	frameCheckpointData byte = 15
	frameCheckpointPut  byte = 22 // client: CheckpointPut (JSON), then data frames
	frameCheckpointTook byte = 23 // server: the checkpoint was taken

	// MaxExchangeWait bounds how long a contributor waits for its round to close.
	MaxExchangeWait = 5 * time.Minute
	// MaxCheckpointBytes bounds a checkpoint transfer.
	MaxCheckpointBytes = 1 << 30
	// checkpointChunk is the size of a checkpoint data frame.
	checkpointChunk = 1 << 20
	// maxCheckpointExtra bounds the state that travels in a checkpoint's head (the outer
	// momentum, as large as the weights).
	maxCheckpointExtra = 64 << 20
)

// ExchangeRequest is a replica's contribution to a round.
type ExchangeRequest struct {
	Model       string  `json:"model"`
	First       int     `json:"first"`
	Last        int     `json:"last"`
	Round       int64   `json:"round"`
	BaseHash    string  `json:"base_hash"` // hash of theta_0 the pseudo-gradient is relative to
	Compression byte    `json:"compression"`
	Loss        float32 `json:"loss"`
	Tokens      int64   `json:"tokens"`
	// OuterLR and OuterMomentum are the outer step the contributor will apply; replicas that
	// disagree on it would end the round with different weights, so the aggregator refuses
	// a contribution made for other settings.
	OuterLR       float32 `json:"outer_lr"`
	OuterMomentum float32 `json:"outer_momentum"`
	// InnerLR is the learning rate of the contributor's inner steps (0: not said); the
	// aggregator refuses contributions trained at another rate, with that reason.
	InnerLR float32 `json:"inner_lr,omitempty"`
	// Sig is the contributor's libp2p-key signature over the round, the base hash and the
	// blob's SHA-256, so the aggregator can show the contribution to the other replicas.
	Sig []byte `json:"sig,omitempty"`
}

// ContributionRef describes one signed contribution inside a round's result; the blobs
// follow the header in the same order.
type ContributionRef struct {
	Peer        string `json:"peer"`
	Compression byte   `json:"compression"`
	Sig         []byte `json:"sig"`
	Size        int    `json:"size"`
}

// ExchangeResult is a round's outcome for one contributor.
type ExchangeResult struct {
	Round    int64             `json:"round"`
	Status   string            `json:"status"` // "ok", "excluded", "resync", "replan", "idle" or "inactive"
	Reason   string            `json:"reason,omitempty"`
	Used     []string          `json:"used"`
	Excluded map[string]string `json:"excluded,omitempty"`
	NewHash  string            `json:"new_hash"` // hash of theta_0 after the outer step
	// Contributions are every contribution the aggregator aggregated, signed by their
	// replicas: each replica recomputes the aggregate from them instead of trusting it.
	Contributions []ContributionRef `json:"contributions,omitempty"`
}

// ExchangeHandler handles one contribution; it may block until the round closes.
type ExchangeHandler func(ctx context.Context, from peer.ID, req ExchangeRequest, blob []byte) (ExchangeResult, []byte, error)

func appendHeaderBlob(hdr any, blob []byte) ([]byte, error) {
	h, err := json.Marshal(hdr)
	if err != nil {
		return nil, err
	}
	out := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(h)+len(blob)), uint32(len(h)))
	return append(append(out, h...), blob...), nil
}

func readHeaderBlob(b []byte, hdr any) ([]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: short message", ErrFrame)
	}
	n := binary.LittleEndian.Uint32(b)
	if n > maxControlFrame || int(n) > len(b)-4 {
		return nil, fmt.Errorf("%w: header length %d", ErrFrame, n)
	}
	if err := json.Unmarshal(b[4:4+n], hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrFrame, err)
	}
	return b[4+n:], nil
}

// ServeExchange registers the exchange-gradient handler.
func (n *Host) ServeExchange(h ExchangeHandler) {
	n.h.SetStreamHandler(ProtocolExchangeGradient, func(s network.Stream) {
		defer s.Close()
		from := s.Conn().RemotePeer()
		s.SetReadDeadline(time.Now().Add(ForwardStepTimeout))
		typ, payload, err := ReadFrame(s, MaxForwardFrame)
		var req ExchangeRequest
		var blob []byte
		if err == nil && typ != frameExchange {
			err = fmt.Errorf("%w: frame type %d", ErrFrame, typ)
		}
		if err == nil {
			blob, err = readHeaderBlob(payload, &req)
		}
		if err != nil {
			s.Reset()
			return
		}
		ctx, cancel := context.WithTimeout(n.ctx, MaxExchangeWait)
		defer cancel()
		res, out, err := h(ctx, from, req, blob)
		s.SetWriteDeadline(time.Now().Add(ForwardStepTimeout))
		if err != nil {
			writeJSONFrame(s, frameError, remoteErr(err))
			return
		}
		reply, err := appendHeaderBlob(res, out)
		if err == nil {
			err = WriteFrame(s, frameExchangeResult, reply)
		}
		if err != nil {
			s.Reset()
		}
	})
}

// Exchange sends a contribution to a round's aggregator and waits for the result.
func (n *Host) Exchange(ctx context.Context, p peer.ID, req ExchangeRequest, blob []byte) (ExchangeResult, []byte, error) {
	var res ExchangeResult
	octx, cancel := context.WithTimeout(ctx, ForwardOpenTimeout)
	s, err := n.newStream(octx, p, ProtocolExchangeGradient)
	cancel()
	if err != nil {
		return res, nil, fmt.Errorf("p2p: exchange stream to %s: %w", p, err)
	}
	defer s.Close()
	payload, err := appendHeaderBlob(req, blob)
	if err != nil {
		s.Reset()
		return res, nil, err
	}
	deadline := time.Now().Add(MaxExchangeWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	reply, err := call(s, deadline, frameExchange, payload, frameExchangeResult)
	if err != nil {
		return res, nil, fmt.Errorf("p2p: exchange with %s: %w", p, err)
	}
	out, err := readHeaderBlob(reply, &res)
	return res, out, err
}

// CheckpointRequest asks for a span's current weights.
type CheckpointRequest struct {
	Model string `json:"model"`
	First int    `json:"first"`
	Last  int    `json:"last"`
	// Record is the requester's signed peer record (PeerRecord.Encode), naming the span: a
	// node that has just taken the span shows it, since its provider records can take many
	// seconds to land in the DHT.
	Record []byte `json:"record,omitempty"`
}

// CheckpointHead describes the checkpoint that follows in data frames.
type CheckpointHead struct {
	Size  int64  `json:"size"`
	Hash  string `json:"hash"`
	Round int64  `json:"round"`
	Extra []byte `json:"extra,omitempty"` // node-defined state that travels with the weights
}

// CheckpointSource returns a span's checkpoint bytes and head.
type CheckpointSource func(from peer.ID, req CheckpointRequest) (CheckpointHead, []byte, error)

// ServeCheckpoints registers the checkpoint/get handler.
func (n *Host) ServeCheckpoints(src CheckpointSource) {
	n.h.SetStreamHandler(ProtocolCheckpointGet, func(s network.Stream) {
		defer s.Close()
		from := s.Conn().RemotePeer()
		s.SetReadDeadline(time.Now().Add(ForwardOpenTimeout))
		typ, payload, err := ReadFrame(s, maxControlFrame)
		var req CheckpointRequest
		if err == nil && typ == frameCheckpointGet {
			err = json.Unmarshal(payload, &req)
		} else if err == nil {
			err = fmt.Errorf("%w: frame type %d", ErrFrame, typ)
		}
		if err != nil {
			s.Reset()
			return
		}
		head, data, err := src(from, req)
		s.SetWriteDeadline(time.Now().Add(ForwardStepTimeout))
		if err != nil {
			writeJSONFrame(s, frameError, remoteErr(err))
			return
		}
		head.Size = int64(len(data))
		if err := writeJSONFrame(s, frameCheckpointHead, head); err != nil {
			s.Reset()
			return
		}
		if err := writeChunks(s, data); err != nil {
			s.Reset()
		}
	})
}

// writeChunks sends data in checkpoint data frames.
func writeChunks(s network.Stream, data []byte) error {
	for off := 0; off < len(data); off += checkpointChunk {
		s.SetWriteDeadline(time.Now().Add(ForwardStepTimeout))
		if err := WriteFrame(s, frameCheckpointData, data[off:min(off+checkpointChunk, len(data))]); err != nil {
			return err
		}
	}
	return nil
}

// readChunks reads size bytes of data frames (a checkpoint, or what), logging progress.
func readChunks(s network.Stream, p peer.ID, size int64, what string) ([]byte, error) {
	data := make([]byte, 0, min(size, checkpointChunk)) // grown as chunks arrive, not on the claim
	nextLog := int64(0)
	for int64(len(data)) < size {
		s.SetReadDeadline(time.Now().Add(ForwardStepTimeout))
		typ, chunk, err := ReadFrame(s, checkpointChunk)
		if err != nil || typ != frameCheckpointData || int64(len(data)+len(chunk)) > size {
			return nil, fmt.Errorf("%w: %s data from %s: %v", ErrFrame, what, p, err)
		}
		data = append(data, chunk...)
		if pct := int64(len(data)) * 100 / max(size, 1); pct >= nextLog {
			logger().Info("receiving "+what, "peer", p, "bytes", len(data), "of", size, "percent", pct)
			nextLog = pct + 25
		}
	}
	return data, nil
}

// GetCheckpoint downloads a span's checkpoint from a peer, in chunks, logging progress.
func (n *Host) GetCheckpoint(ctx context.Context, p peer.ID, req CheckpointRequest) (CheckpointHead, []byte, error) {
	var head CheckpointHead
	octx, cancel := context.WithTimeout(ctx, ForwardOpenTimeout)
	s, err := n.newStream(octx, p, ProtocolCheckpointGet)
	cancel()
	if err != nil {
		return head, nil, fmt.Errorf("p2p: checkpoint stream to %s: %w", p, err)
	}
	defer s.Close()
	b, _ := json.Marshal(req)
	reply, err := call(s, time.Now().Add(ForwardStepTimeout), frameCheckpointGet, b, frameCheckpointHead)
	if err != nil {
		return head, nil, fmt.Errorf("p2p: checkpoint from %s: %w", p, err)
	}
	if err := json.Unmarshal(reply, &head); err != nil || head.Size < 0 || head.Size > MaxCheckpointBytes {
		s.Reset()
		return head, nil, fmt.Errorf("%w: checkpoint head from %s", ErrFrame, p)
	}
	data, err := readChunks(s, p, head.Size, "checkpoint")
	if err != nil {
		s.Reset()
		return head, nil, err
	}
	return head, data, nil
}

// CheckpointPut offers a span's checkpoint to a peer (the mirror of the seed's PutCheckpoint).
type CheckpointPut struct {
	CheckpointRequest
	CheckpointHead
}

// CheckpointSink decides whether to take an offered checkpoint; an error refuses it.
type CheckpointSink func(from peer.ID, put CheckpointPut, data []byte) error

// CheckpointAdmit decides from the head alone whether an offer may send its data at all
// (span, round, size, sender); an error refuses it before a byte of data is read.
type CheckpointAdmit func(from peer.ID, put CheckpointPut) error

// ServeCheckpointPut registers the checkpoint/put handler. The head is read first (bounded),
// admit sees it, then at most its announced size of data is read, then the sink answers.
func (n *Host) ServeCheckpointPut(admit CheckpointAdmit, sink CheckpointSink) {
	n.h.SetStreamHandler(ProtocolCheckpointPut, func(s network.Stream) {
		defer s.Close()
		from := s.Conn().RemotePeer()
		s.SetReadDeadline(time.Now().Add(ForwardOpenTimeout))
		typ, payload, err := ReadFrame(s, maxControlFrame+maxCheckpointExtra)
		var put CheckpointPut
		if err == nil && typ == frameCheckpointPut {
			err = json.Unmarshal(payload, &put)
		} else if err == nil {
			err = fmt.Errorf("%w: frame type %d", ErrFrame, typ)
		}
		if err != nil || put.Size < 0 || put.Size > MaxCheckpointBytes {
			s.Reset()
			return
		}
		if err := admit(from, put); err != nil {
			s.SetWriteDeadline(time.Now().Add(ForwardOpenTimeout))
			writeJSONFrame(s, frameError, remoteErr(err))
			return
		}
		data, err := readChunks(s, from, put.Size, "checkpoint")
		if err != nil {
			s.Reset()
			return
		}
		s.SetWriteDeadline(time.Now().Add(ForwardStepTimeout))
		if err := sink(from, put, data); err != nil {
			writeJSONFrame(s, frameError, remoteErr(err))
			return
		}
		writeJSONFrame(s, frameCheckpointTook, struct{}{})
	})
}

// PutCheckpoint offers a checkpoint to a peer and waits for its answer.
func (n *Host) PutCheckpoint(ctx context.Context, p peer.ID, put CheckpointPut, data []byte) error {
	octx, cancel := context.WithTimeout(ctx, ForwardOpenTimeout)
	s, err := n.newStream(octx, p, ProtocolCheckpointPut)
	cancel()
	if err != nil {
		return fmt.Errorf("p2p: checkpoint put stream to %s: %w", p, err)
	}
	defer s.Close()
	put.Size = int64(len(data))
	s.SetWriteDeadline(time.Now().Add(ForwardStepTimeout))
	if err := writeJSONFrame(s, frameCheckpointPut, put); err != nil {
		s.Reset()
		return err
	}
	if err := writeChunks(s, data); err != nil {
		// The peer may have refused the offer on its head and stopped reading: its answer
		// says why.
		s.SetReadDeadline(time.Now().Add(ForwardOpenTimeout))
		if typ, reply, rerr := ReadFrame(s, maxControlFrame); rerr == nil && typ == frameError {
			var re RemoteError
			json.Unmarshal(reply, &re)
			s.Reset()
			return &re
		}
		s.Reset()
		return err
	}
	s.SetReadDeadline(time.Now().Add(ForwardStepTimeout))
	typ, reply, err := ReadFrame(s, maxControlFrame)
	switch {
	case err != nil:
		s.Reset()
		return err
	case typ == frameCheckpointTook:
		return nil
	case typ == frameError:
		var re RemoteError
		json.Unmarshal(reply, &re)
		return &re
	}
	s.Reset()
	return fmt.Errorf("%w: unexpected frame type %d", ErrFrame, typ)
}
