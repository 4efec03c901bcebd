package node

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/diloco/replicanet"
)

// Catching up (replicanet.Catchup): a replica behind its span's round takes theta_0 from one
// ahead that a quorum of holders backs; one ahead offers its checkpoint to stragglers.

// makeCatchup builds the node's catching up over its replica, reports and coverage.
func (n *Node) makeCatchup() *replicanet.Catchup {
	return &replicanet.Catchup{Host: n.host, Model: n.model, Ctx: n.ctx, Reports: &n.reports,
		Replica: func() *diloco.Replica { return n.replica },
		Span:    n.Span,
		Holders: n.replicas,
		Steps:   n.innerSteps,
		Synced:  n.publishTraining,
		Refresh: func() { n.cov.Expire(2 * time.Second) },
	}
}

func (n *Node) newerReplica() (peer.ID, bool) { return n.catch.NewerReplica() }

// catchUpFrom resyncs from one replica and reports whether it took its checkpoint.
func (n *Node) catchUpFrom(from peer.ID) bool { return n.catch.From(from) }

// resyncFrom fetches a replica's checkpoint and takes it.
func (n *Node) resyncFrom(ctx context.Context, p peer.ID, steps int64) error {
	return n.catch.Resync(ctx, p, steps)
}
