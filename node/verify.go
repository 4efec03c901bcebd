package node

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/nodeapi"
)

// TrainingReport is what a replica gossips after each round (and every reportInterval).
type TrainingReport = diloco.Report

// reportInterval republishes the node's report so late joiners learn it.
const reportInterval = 10 * time.Second

// reportTTL drops reports of peers that went quiet.
const reportTTL = 2 * time.Minute

func (n *Node) trainingTopic() string { return "/neuroshard/training/1.0.0/" + n.model.Name }

// validReport is the topic's validator: a well-formed report for this model.
// Beyond its form, a report's time must be within reportSkew of this node's clock.
func (n *Node) validReport(from peer.ID, data []byte) bool {
	var r TrainingReport
	if len(data) > 4096 || json.Unmarshal(data, &r) != nil || !r.Valid(n.model.Name, n.model.Layers) {
		return false
	}
	at := time.Unix(r.Time, 0)
	return at.After(time.Now().Add(-reportSkew)) && at.Before(time.Now().Add(reportSkew))
}

// reportSkew bounds how far a report's time may be from this node's clock.
const reportSkew = 10 * time.Minute

type reports struct {
	mu   sync.Mutex
	by   map[peer.ID]reportAt
	mine []float64 // the node's own reported losses, oldest first
}

type reportAt struct {
	r  TrainingReport
	at time.Time
}

func (n *Node) startGossip() error {
	n.reports.by = map[peer.ID]reportAt{}
	t, err := n.host.JoinTopic(n.trainingTopic(), n.validReport, func(from peer.ID, data []byte) {
		var r TrainingReport
		if json.Unmarshal(data, &r) == nil {
			n.reports.mu.Lock()
			n.reports.by[from] = reportAt{r, time.Now()}
			n.reports.mu.Unlock()
			n.maybePush(from, r)
			n.wake()
		}
	})
	if err != nil {
		return err
	}
	n.topic = t
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		tk := time.NewTicker(reportInterval)
		defer tk.Stop()
		for {
			select {
			case <-n.ctx.Done():
				return
			case <-tk.C:
				n.train.mu.Lock()
				active := n.train.innerSteps > 0
				n.train.mu.Unlock()
				if active {
					n.publishTraining()
				}
			}
		}
	}()
	return nil
}

// myReport is the node's current report.
func (n *Node) myReport() TrainingReport {
	span := n.Span()
	rs := n.roundState()
	round, hash := rs.Round, rs.Hash
	n.train.mu.Lock()
	steps, tokens := n.train.innerSteps, n.train.tokens
	n.train.mu.Unlock()
	return TrainingReport{Model: n.model.Name, First: span.First, Last: span.Last, Round: round, Hash: hash,
		Loss: float64(n.recentLoss()), Steps: steps, Tokens: tokens, Time: time.Now().Unix()}
}

// publishTraining gossips the node's report.
func (n *Node) publishTraining() {
	r := n.myReport()
	n.reports.mu.Lock()
	n.reports.by[n.host.ID()] = reportAt{r, time.Now()}
	if r.Loss > 0 {
		n.reports.mine = append(n.reports.mine, r.Loss)
		if len(n.reports.mine) > lossHistory {
			n.reports.mine = n.reports.mine[1:]
		}
	}
	n.reports.mu.Unlock()
	data, _ := json.Marshal(r)
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	if err := n.topic.Publish(ctx, data); err != nil && n.ctx.Err() == nil {
		logger().Debug("training report not published", "err", err)
	}
}

// Training is the node's training as the API shows it: the gossiped reports, the round, the
// inner steps.
func (n *Node) Training() nodeapi.TrainingView {
	v := nodeapi.TrainingView{Reports: map[peer.ID]nodeapi.ReportSeen{}, Round: n.roundState(), Loss: float64(n.recentLoss())}
	if n.replica != nil {
		v.Exclusions = n.replica.Exclusions()
	}
	// A report counts (is fresh) only from a peer the coverage view shows holding the span it
	// reports on: a peer that announces no layers (or other ones) moves no figure.
	ctx, cancel := context.WithTimeout(n.ctx, time.Second)
	holdings := n.pipe.Holdings(ctx)
	cancel()
	n.reports.mu.Lock()
	for p, ra := range n.reports.by {
		holds := p == n.host.ID() || slices.Contains(holdings[p], layers.Span{First: ra.r.First, Last: ra.r.Last})
		v.Reports[p] = nodeapi.ReportSeen{Report: ra.r, At: ra.at, Fresh: holds && time.Since(ra.at) < reportTTL}
	}
	v.MyLosses = slices.Clone(n.reports.mine)
	n.reports.mu.Unlock()
	n.train.mu.Lock()
	v.InnerSteps, v.Driving = n.train.innerSteps, n.train.driving
	n.train.mu.Unlock()
	return v
}
