package p2p

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// readOpen reads a session stream's OPEN frame within ForwardOpenTimeout.
func readOpen(s network.Stream) (ForwardOpen, error) {
	var req ForwardOpen
	s.SetReadDeadline(time.Now().Add(ForwardOpenTimeout))
	typ, payload, err := ReadFrame(s, maxControlFrame)
	if err != nil {
		return req, err
	}
	if typ != frameOpen {
		return req, fmt.Errorf("%w: expected OPEN, got frame type %d", ErrFrame, typ)
	}
	if err := json.Unmarshal(payload, &req); err != nil {
		return req, fmt.Errorf("%w: OPEN: %v", ErrFrame, err)
	}
	return req, nil
}

// answerOpen confirms or refuses a session; a session that names its weights has them in the
// OPENED reply.
func answerOpen(s network.Stream, req ForwardOpen, sess any, err error) error {
	s.SetWriteDeadline(time.Now().Add(ForwardOpenTimeout))
	if err != nil {
		writeJSONFrame(s, frameError, remoteErr(err))
		s.Close()
		return err
	}
	opened := ForwardOpened{First: req.First, Last: req.Last}
	if v, ok := sess.(Versioned); ok {
		opened.Weights = v.WeightsHash()
	}
	return writeJSONFrame(s, frameOpened, opened)
}

// acceptSession reads a session stream's OPEN, asks open for the session and answers the
// client; ok is false when the stream is already finished (refused or broken).
func acceptSession[S any](s network.Stream, open func(peer.ID, ForwardOpen) (S, error)) (sess S, req ForwardOpen, ok bool) {
	from := s.Conn().RemotePeer()
	req, err := readOpen(s)
	if err == nil && !validSessionID(req.Session) {
		err = fmt.Errorf("%w: OPEN names session %.40q, not 32 hex digits", ErrFrame, req.Session)
	}
	if err != nil {
		logger().Debug("bad session open", "peer", from, "protocol", s.Protocol(), "err", err)
		s.Reset()
		return sess, req, false
	}
	sess, err = open(from, req)
	if aerr := answerOpen(s, req, sess, err); aerr != nil {
		if err == nil {
			// The session was opened but the client never learnt it (it reset the stream, or
			// the write timed out): free it here, or its slot and cache would outlive the stream.
			closeSession(sess)
			s.Reset()
		}
		var zero S
		return zero, req, false
	}
	return sess, req, true
}

// closeSession closes a session value that has a Close method.
func closeSession(sess any) {
	if c, ok := sess.(interface{ Close() }); ok {
		c.Close()
	}
}

// serveFrames runs a session's request loop: each frame is handed to handle, whose answer (or
// error, sent as ERROR) goes back. A malformed frame (ErrFrame from the reader or from handle)
// resets the stream; EOF or ForwardIdleTimeout of silence closes it.
func serveFrames(s network.Stream, from peer.ID, handle func(typ byte, payload []byte) (byte, []byte, error)) {
	for {
		s.SetReadDeadline(time.Now().Add(ForwardIdleTimeout))
		typ, payload, err := ReadFrame(s, MaxForwardFrame)
		if err != nil {
			if errors.Is(err, ErrFrame) {
				logger().Debug("peer sent a bad frame; cutting it off", "peer", from, "protocol", s.Protocol(), "err", err)
				s.Reset()
			} else {
				s.Close()
			}
			return
		}
		rt, reply, err := handle(typ, payload)
		s.SetWriteDeadline(time.Now().Add(ForwardStepTimeout))
		if errors.Is(err, ErrFrame) {
			logger().Debug("peer sent a bad message; cutting it off", "peer", from, "protocol", s.Protocol(), "err", err)
			s.Reset()
			return
		}
		if err != nil {
			rt, reply = frameError, nil
			if reply, err = json.Marshal(remoteErr(err)); err != nil {
				s.Reset()
				return
			}
		}
		if err := WriteFrame(s, rt, reply); err != nil {
			s.Reset()
			return
		}
	}
}

// call sends one request frame on a client stream and reads the answer, turning an ERROR
// frame into *RemoteError. Any transport failure resets the stream.
func call(s network.Stream, deadline time.Time, typ byte, payload []byte, want byte) ([]byte, error) {
	s.SetDeadline(deadline)
	if err := WriteFrame(s, typ, payload); err != nil {
		s.Reset()
		return nil, err
	}
	rt, reply, err := ReadFrame(s, MaxForwardFrame)
	if err != nil {
		s.Reset()
		return nil, err
	}
	switch rt {
	case want:
		return reply, nil
	case frameError:
		var re RemoteError
		json.Unmarshal(reply, &re)
		return nil, &re
	}
	s.Reset()
	return nil, fmt.Errorf("%w: unexpected frame type %d", ErrFrame, rt)
}

// Small codecs for the training messages.

func appendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }
func appendF32(b []byte, v float32) []byte {
	return binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
}

func readU64(b []byte) (uint64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, fmt.Errorf("%w: short message", ErrFrame)
	}
	return binary.LittleEndian.Uint64(b), b[8:], nil
}

func readF32(b []byte) (float32, []byte, error) {
	if len(b) < 4 {
		return 0, nil, fmt.Errorf("%w: short message", ErrFrame)
	}
	v := math.Float32frombits(binary.LittleEndian.Uint32(b))
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return 0, nil, fmt.Errorf("%w: non-finite number", ErrFrame)
	}
	return v, b[4:], nil
}

// appendOptTensor writes a presence byte and, if t is not nil, the tensor.
func appendOptTensor(b []byte, t *Tensor) ([]byte, error) {
	if t == nil {
		return append(b, 0), nil
	}
	return AppendTensor(append(b, 1), t)
}

func readOptTensor(b []byte) (*Tensor, []byte, error) {
	if len(b) < 1 || b[0] > 1 {
		return nil, nil, fmt.Errorf("%w: bad tensor presence byte", ErrFrame)
	}
	if b[0] == 0 {
		return nil, b[1:], nil
	}
	return DecodeTensor(b[1:], maxForwardElems)
}

// readOnlyTensor decodes a payload that must be exactly one tensor.
func readOnlyTensor(b []byte) (*Tensor, error) {
	t, rest, err := DecodeTensor(b, maxForwardElems)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%w: %d trailing bytes", ErrFrame, len(rest))
	}
	return t, err
}
