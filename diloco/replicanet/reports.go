package replicanet

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// ReportInterval republishes a training replica's report so late joiners learn it.
const ReportInterval = 10 * time.Second

// ReportTTL drops reports of peers that went quiet.
const ReportTTL = 2 * time.Minute

// TrainingTopic is the gossip topic of a model's training reports.
func TrainingTopic(model string) string { return "/neuroshard/training/1.0.0/" + model }

// Reports gossips a replica's training reports (diloco.Report) on its model's topic and books
// the peers': the topic's validator takes only a well-formed report for the model, stamped
// within diloco.ReportSkew of this node's clock.
type Reports struct {
	Host     *p2p.Host
	Model    layers.Config
	Book     *diloco.ReportBook
	Mine     func() diloco.Report                // this node's report now
	Training func() bool                         // republished every ReportInterval while true
	OnReport func(from peer.ID, r diloco.Report) // after a peer's report is booked

	topic *p2p.Topic
}

// Valid is the topic's validator.
func (g *Reports) Valid(_ peer.ID, data []byte) bool {
	_, ok := diloco.DecodeReport(data, g.Model.Name, g.Model.Layers, time.Now())
	return ok
}

// Start joins the topic and republishes this node's report until ctx ends (counted in wg).
func (g *Reports) Start(ctx context.Context, wg *sync.WaitGroup) error {
	g.Book.TTL = ReportTTL
	t, err := g.Host.JoinTopic(TrainingTopic(g.Model.Name), p2p.SmallGossip, g.Valid, func(from peer.ID, data []byte) {
		if r, ok := diloco.DecodeReport(data, g.Model.Name, g.Model.Layers, time.Now()); ok {
			g.Book.Put(from.String(), r, time.Now())
			g.OnReport(from, r)
		}
	})
	if err != nil {
		return err
	}
	g.topic = t
	wg.Go(func() {
		tk := time.NewTicker(ReportInterval)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				if g.Training() {
					g.Publish(ctx)
				}
			}
		}
	})
	return nil
}

// Publish books and gossips this node's report.
func (g *Reports) Publish(ctx context.Context) {
	r := g.Mine()
	g.Book.PutMine(g.Host.ID().String(), r, time.Now())
	data, _ := json.Marshal(r)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := g.topic.Publish(ctx, data); err != nil && ctx.Err() == nil {
		logger().Debug("training report not published", "err", err)
	}
}

// Topic is the joined topic (nil before Start).
func (g *Reports) Topic() *p2p.Topic { return g.topic }
