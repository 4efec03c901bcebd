package node

import (
	"time"

	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/diloco/replicanet"
)

// Catching up (replicanet.Catchup): a replica behind its span's round takes theta_0 from one
// ahead that a quorum of holders backs; one ahead offers its checkpoint to stragglers.

// makeCatchup builds the node's catching up over its replica, reports and coverage.
func (n *Node) makeCatchup() *replicanet.Catchup {
	return &replicanet.Catchup{Host: n.host, Model: n.model, Ctx: n.ctx, Reports: &n.reports,
		Replica: func() *diloco.Replica { return n.replica() },
		Span:    n.Span,
		Holders: n.replicas,
		Steps:   n.innerSteps,
		Synced:  n.publishTraining,
		Refresh: func() { n.cov.Expire(2 * time.Second) },
	}
}
