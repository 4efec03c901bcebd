package p2p

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Fraud proofs too large for gossip: the gossip carries an announcement (the proof's ID and
// size), and whoever checks it fetches the proof from its finder over fraud/get, in
// checkpoint-sized data frames, the size bounded by the caller before a byte is read.
const (
	frameFraudGet  byte = 24 // client: the proof's 32-byte ID
	frameFraudHead byte = 25 // server: its size (8 bytes), then data frames
)

// FraudSource returns a kept proof's bytes by ID.
type FraudSource func(from peer.ID, id [32]byte) ([]byte, error)

// ServeFraudProofs registers the fraud/get handler.
func (n *Host) ServeFraudProofs(src FraudSource) {
	n.h.SetStreamHandler(ProtocolFraudGet, func(s network.Stream) {
		defer s.Close()
		s.SetReadDeadline(time.Now().Add(ForwardOpenTimeout))
		typ, payload, err := ReadFrame(s, maxControlFrame)
		if err != nil || typ != frameFraudGet || len(payload) != 32 {
			s.Reset()
			return
		}
		data, err := src(s.Conn().RemotePeer(), [32]byte(payload))
		s.SetWriteDeadline(time.Now().Add(ForwardStepTimeout))
		if err != nil {
			writeJSONFrame(s, frameError, remoteErr(err))
			return
		}
		if err := WriteFrame(s, frameFraudHead, binary.LittleEndian.AppendUint64(nil, uint64(len(data)))); err != nil {
			s.Reset()
			return
		}
		if err := writeChunks(s, data); err != nil {
			s.Reset()
		}
	})
}

// GetFraudProof fetches a proof by ID from a peer: at most max bytes, read as they arrive.
func (n *Host) GetFraudProof(ctx context.Context, p peer.ID, id [32]byte, max int64) ([]byte, error) {
	octx, cancel := context.WithTimeout(ctx, ForwardOpenTimeout)
	s, err := n.newStream(octx, p, ProtocolFraudGet)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("p2p: fraud proof stream to %s: %w", p, err)
	}
	defer s.Close()
	reply, err := call(s, time.Now().Add(ForwardStepTimeout), frameFraudGet, id[:], frameFraudHead)
	if err != nil {
		return nil, fmt.Errorf("p2p: fraud proof from %s: %w", p, err)
	}
	if len(reply) != 8 || binary.LittleEndian.Uint64(reply) > uint64(max) {
		s.Reset()
		return nil, fmt.Errorf("%w: fraud proof head from %s (at most %d bytes)", ErrFrame, p, max)
	}
	data, err := readChunks(s, p, int64(binary.LittleEndian.Uint64(reply)), "fraud proof")
	if err != nil {
		s.Reset()
		return nil, err
	}
	return data, nil
}
