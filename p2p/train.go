package p2p

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The training stream (/neuroshard/backward/2.0.0, the mirror of the seed's Backward): a
// driver opens one per stage and training session, then for every micro-batch sends
//
//	TRAIN_FORWARD  id, input            -> OUTPUT  the stage's output (it keeps the input)
//	TRAIN_LOSS     id, input, targets   -> LOSS    loss, gradient w.r.t. the input (last stage)
//	TRAIN_BACKWARD id, loss, dOutput    -> GRAD    gradient w.r.t. the input (absent on the first)
//
// A stage applies its inner optimizer step when it has its gradients. Inputs kept for a
// backward that never comes are dropped after TrainInputTTL.
const (
	frameTrainForward  byte = 6
	frameTrainLoss     byte = 7
	frameTrainBackward byte = 8
	frameLoss          byte = 9
	frameGrad          byte = 10

	// TrainInputTTL is how long a stage keeps a micro-batch's input waiting for its backward.
	TrainInputTTL = 5 * time.Minute
)

// TrainSession is what a node runs for one training stream.
type TrainSession interface {
	Forward(id uint64, in *Tensor) (*Tensor, error)
	Loss(id uint64, in, targets *Tensor) (loss float32, gradIn *Tensor, err error)
	Backward(id uint64, loss float32, gradOut *Tensor) (gradIn *Tensor, err error)
	Close()
}

// TrainHandler opens a training session.
type TrainHandler func(from peer.ID, req ForwardOpen) (TrainSession, error)

// ServeTrain registers the training protocol's handler.
func (n *Host) ServeTrain(h TrainHandler) {
	n.h.SetStreamHandler(ProtocolBackward, func(s network.Stream) { n.handleTrain(s, h) })
}

func (n *Host) handleTrain(s network.Stream, h TrainHandler) {
	sess, _, ok := acceptSession(s, h)
	if !ok {
		return
	}
	defer sess.Close()
	serveFrames(s, s.Conn().RemotePeer(), func(typ byte, b []byte) (byte, []byte, error) {
		id, b, err := readU64(b)
		if err != nil {
			return 0, nil, err
		}
		switch typ {
		case frameTrainForward:
			in, err := readOnlyTensor(b)
			if err != nil {
				return 0, nil, err
			}
			out, err := sess.Forward(id, in)
			if err != nil {
				return 0, nil, err
			}
			buf, err := AppendTensor(nil, out)
			return frameOutput, buf, err
		case frameTrainLoss:
			in, rest, err := DecodeTensor(b, maxForwardElems)
			if err != nil {
				return 0, nil, err
			}
			targets, err := readOnlyTensor(rest)
			if err != nil {
				return 0, nil, err
			}
			loss, grad, err := sess.Loss(id, in, targets)
			if err != nil {
				return 0, nil, err
			}
			buf, err := appendOptTensor(appendF32(nil, loss), grad)
			return frameLoss, buf, err
		case frameTrainBackward:
			loss, rest, err := readF32(b)
			if err != nil {
				return 0, nil, err
			}
			gradOut, err := readOnlyTensor(rest)
			if err != nil {
				return 0, nil, err
			}
			grad, err := sess.Backward(id, loss, gradOut)
			if err != nil {
				return 0, nil, err
			}
			buf, err := appendOptTensor(nil, grad)
			return frameGrad, buf, err
		}
		return 0, nil, fmt.Errorf("%w: frame type %d on a training stream", ErrFrame, typ)
	})
}

// TrainClient is the driver's side of one training stream.
type TrainClient struct {
	s    network.Stream
	peer peer.ID
}

// OpenTrain opens a training session on a peer.
func (n *Host) OpenTrain(ctx context.Context, p peer.ID, req ForwardOpen) (*TrainClient, error) {
	s, _, err := n.openSession(ctx, p, ProtocolBackward, req)
	if err != nil {
		return nil, err
	}
	return &TrainClient{s: s, peer: p}, nil
}

// Peer is the peer running the stage.
func (c *TrainClient) Peer() peer.ID { return c.peer }

// Forward runs a micro-batch's input through the stage, which keeps it for the backward.
func (c *TrainClient) Forward(ctx context.Context, id uint64, in *Tensor) (*Tensor, error) {
	buf, err := AppendTensor(appendU64(nil, id), in)
	if err != nil {
		return nil, err
	}
	reply, err := call(c.s, stepDeadline(ctx), frameTrainForward, buf, frameOutput)
	if err != nil {
		return nil, err
	}
	return readOnlyTensor(reply)
}

// Loss runs the last stage on a micro-batch and back-propagates the loss.
func (c *TrainClient) Loss(ctx context.Context, id uint64, in, targets *Tensor) (float32, *Tensor, error) {
	buf, err := AppendTensor(appendU64(nil, id), in)
	if err == nil {
		buf, err = AppendTensor(buf, targets)
	}
	if err != nil {
		return 0, nil, err
	}
	reply, err := call(c.s, stepDeadline(ctx), frameTrainLoss, buf, frameLoss)
	if err != nil {
		return 0, nil, err
	}
	loss, rest, err := readF32(reply)
	if err != nil {
		return 0, nil, err
	}
	grad, rest, err := readOptTensor(rest)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%w: trailing bytes", ErrFrame)
	}
	return loss, grad, err
}

// Backward sends the gradient of the stage's output; the stage steps its optimizer and
// returns the gradient of its input (nil from the first stage).
func (c *TrainClient) Backward(ctx context.Context, id uint64, loss float32, gradOut *Tensor) (*Tensor, error) {
	buf, err := AppendTensor(appendF32(appendU64(nil, id), loss), gradOut)
	if err != nil {
		return nil, err
	}
	reply, err := call(c.s, stepDeadline(ctx), frameTrainBackward, buf, frameGrad)
	if err != nil {
		return nil, err
	}
	grad, rest, err := readOptTensor(reply)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%w: trailing bytes", ErrFrame)
	}
	return grad, err
}

// Close ends the training session.
func (c *TrainClient) Close() error { return c.s.Close() }
