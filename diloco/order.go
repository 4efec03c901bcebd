package diloco

import "slices"

// The order of a round's aggregators, and whom an aggregator waits for: both from the
// membership view (who holds the span, at which round each said it stands) and the replicas
// the last round used.

// finishing tells whether p, one round behind round, took part in the previous round
// (lastUsed): then it is still checking and applying that round's result and is about to be at
// round. With rounds shorter than that, treating it as behind made the replicas of a span run
// alternately alone instead of together.
func finishing(p string, at, round int64, lastUsed []string) bool {
	return at == round-1 && slices.Contains(lastUsed, p)
}

// aggregators lists, in the order to try them, the replicas that may aggregate round: those
// not known to be behind it (past round 0, those known at all), lowest ID first. A replica that just joined (round 0) is never
// asked by replicas further along, so it cannot roll them back.
func (r *Replica) aggregators(reps []string, round int64) []string {
	r.mu.Lock()
	lastUsed := r.lastUsed
	r.mu.Unlock()
	var out []string
	for _, p := range reps {
		if p != r.cfg.Self {
			at, known := r.cfg.Membership.Round(p)
			if known && at < round && !finishing(p, at, round, lastUsed) {
				continue
			}
			if !known && round > 0 {
				continue // past round 0, a replica that gossips no round does not train
			}
		}
		out = append(out, p)
	}
	return out
}

// roundPeers is who the aggregator of round waits for: the replicas not known to be ahead of
// it. One behind is catching up (or finishing the previous round) and joins the round when
// it arrives, or the adaptive deadline passes; not waiting for it made the replica ahead run
// away with rounds of its own while the other caught up again and again. The membership view
// is asked without r.mu held (it may take locks of its own).
func (r *Replica) roundPeers(reps []string, round int64) []string {
	var out []string
	for _, p := range reps {
		if p == r.cfg.Self {
			out = append(out, p)
			continue
		}
		if at, ok := r.cfg.Membership.Round(p); ok && at > round {
			continue
		}
		out = append(out, p)
	}
	return out
}
