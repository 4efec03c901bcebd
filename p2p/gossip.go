package p2p

import (
	"context"
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// MaxGossipMessage bounds a gossip message on any topic (gossipsub's own default); each topic
// bounds its messages further when it is joined (reports and transactions are small, fraud
// proofs carry a session's tensors).
const MaxGossipMessage = 1 << 20

// SmallGossip is the bound of the topics whose messages are small: reports, transactions.
const SmallGossip = 64 << 10

// GossipValidator accepts or rejects a message before it is delivered or forwarded: an honest
// peer drops what fails it, so a bad message never spreads.
type GossipValidator func(from peer.ID, data []byte) bool

// Topic is a joined gossipsub topic.
type Topic struct {
	t   *pubsub.Topic
	sub *pubsub.Subscription
}

func (n *Host) pubsub() (*pubsub.PubSub, error) {
	n.psOnce.Do(func() {
		n.ps, n.psErr = pubsub.NewGossipSub(n.ctx, n.h, pubsub.WithMaxMessageSize(MaxGossipMessage))
	})
	return n.ps, n.psErr
}

// JoinTopic joins a gossip topic whose messages are at most max bytes, with a validator, and
// delivers every valid message from other peers to onMessage (in a goroutine of the host's,
// until Close).
func (n *Host) JoinTopic(name string, max int, validate GossipValidator, onMessage func(from peer.ID, data []byte)) (*Topic, error) {
	ps, err := n.pubsub()
	if err != nil {
		return nil, fmt.Errorf("p2p: gossipsub: %w", err)
	}
	if err := ps.RegisterTopicValidator(name, func(_ context.Context, from peer.ID, m *pubsub.Message) bool {
		return len(m.Data) <= max && validate(m.GetFrom(), m.Data)
	}); err != nil {
		return nil, err
	}
	t, err := ps.Join(name)
	if err != nil {
		return nil, err
	}
	sub, err := t.Subscribe()
	if err != nil {
		return nil, err
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			m, err := sub.Next(n.ctx)
			if err != nil {
				return
			}
			if m.ReceivedFrom == n.h.ID() && m.GetFrom() == n.h.ID() {
				continue
			}
			onMessage(m.GetFrom(), m.Data)
		}
	}()
	return &Topic{t: t, sub: sub}, nil
}

// Publish sends data to the topic's peers (signed by the host's key).
func (t *Topic) Publish(ctx context.Context, data []byte) error { return t.t.Publish(ctx, data) }

// Peers lists the peers known on the topic.
func (t *Topic) Peers() []peer.ID { return t.t.ListPeers() }
