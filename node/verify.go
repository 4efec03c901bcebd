package node

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/diloco/replicanet"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/nodeapi"
)

// TrainingReport is what a replica gossips after each round (and every ReportInterval).
type TrainingReport = diloco.Report

// startGossip joins the training reports' topic (replicanet.Reports).
func (n *Node) startGossip() error {
	n.gossip = &replicanet.Reports{Host: n.host, Model: n.model, Book: &n.reports, Mine: n.myReport,
		Training: func() bool { return n.innerSteps() > 0 },
		OnReport: func(from peer.ID, r diloco.Report) { n.catch.MaybePush(from, r); n.wake() }}
	return n.gossip.Start(n.ctx, &n.wg)
}

// myReport is the node's current report.
func (n *Node) myReport() TrainingReport {
	span := n.Span()
	rs := n.roundState()
	n.train.mu.Lock()
	steps, tokens := n.train.innerSteps, n.train.tokens
	n.train.mu.Unlock()
	var members []string
	if n.replica() != nil {
		members = n.replica().Members()
		members = members[:min(len(members), diloco.MaxReportMembers)]
	}
	return TrainingReport{Model: n.model.Name, First: span.First, Last: span.Last, Round: rs.Round, Hash: rs.Hash,
		Loss: float64(n.recentLoss()), Steps: steps, Tokens: tokens, Time: time.Now().Unix(), Members: members}
}

// publishTraining gossips the node's report.
func (n *Node) publishTraining() { n.gossip.Publish(n.ctx) }

// Training is the node's training as the API shows it: the gossiped reports, the round, the
// inner steps. A report counts (is fresh) only from a member of its span's rounds
// (diloco.Counting): a peer that announces layers, or reports on a span it does not train,
// moves no figure.
func (n *Node) Training() nodeapi.TrainingView {
	v := nodeapi.TrainingView{Reports: map[peer.ID]nodeapi.ReportSeen{}, History: map[peer.ID][]diloco.Report{},
		Round: n.roundState(), Loss: float64(n.recentLoss())}
	if n.replica() != nil {
		v.Exclusions = n.replica().Exclusions()
	}
	ctx, cancel := context.WithTimeout(n.ctx, time.Second)
	holdings := n.pipe.Holdings(ctx)
	cancel()
	all := n.reports.All()
	if all == nil {
		all = map[string]diloco.Seen{}
	}
	self := n.host.ID().String()
	if n.innerSteps() > 0 { // this node's own training counts as it stands now, published or not
		if _, ok := all[self]; !ok {
			all[self] = diloco.Seen{Report: n.myReport(), At: time.Now()}
		}
	}
	c := diloco.Counting{Self: self, Own: n.Span(), Holdings: map[string][]layers.Span{}, Audited: map[string]int{}}
	if n.replica() != nil {
		c.Members = n.replica().Members()
	}
	for p, spans := range holdings {
		c.Holdings[p.String()] = spans
	}
	for p, passed := range n.pipe.AuditsPassed() {
		c.Audited[p.String()] = passed
	}
	counts := c.Counts(all, func(s diloco.Seen) bool { return n.reports.IsFresh(s.At) })
	for id, s := range all {
		p, err := peer.Decode(id)
		if err != nil {
			continue
		}
		v.Reports[p] = nodeapi.ReportSeen{Report: s.Report, At: s.At, Fresh: counts(id, s.Report) && n.reports.IsFresh(s.At)}
		if v.Reports[p].Fresh {
			v.History[p] = n.reports.History(id)
		}
	}
	v.MyLosses = n.reports.MyLosses()
	n.train.mu.Lock()
	v.InnerSteps, v.Driving = n.train.innerSteps, n.train.driving
	n.train.mu.Unlock()
	return v
}
