package nodeapi

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// roundHistory is how many of its completed rounds the node keeps for the dashboard.
const roundHistory = 512

// roundBook is the node's completed DiLoCo rounds, oldest first: the loss it reported, the
// weights each round agreed on, and how many of the span's members reported the same hash.
type roundBook struct {
	mu     sync.Mutex
	points []apitypes.RoundPoint
}

// RoundDone records a round the node's replica completed (the node calls it once the round
// is saved and reported) and tells the live subscribers (training.round).
func (a *API) RoundDone(r diloco.Round, loss float64) {
	p := apitypes.RoundPoint{Round: r.Round, Time: time.Now().UTC().Format(time.RFC3339), Loss: loss, Hash: r.Hash,
		Replicas: len(r.Used), Excluded: len(r.Excluded), Solo: len(r.Used) <= 1}
	b := &a.rounds
	b.mu.Lock()
	b.points = append(b.points, p)
	if len(b.points) > roundHistory {
		b.points = slices.Delete(b.points, 0, len(b.points)-roundHistory)
	}
	b.mu.Unlock()
	a.publish("training.round", p)
}

// TrainingRounds implements httpapi.Backend: the recent rounds, with the agreement of the
// span's members on each one's hash as far as their reports tell it (a report carries the
// round and hash a replica stands at; each peer's last few are kept).
func (a *API) TrainingRounds(ctx context.Context) apitypes.TrainingRounds {
	v := a.node.Training()
	span := a.node.Span()
	// For each round, the hashes the span's members reported at it.
	hashes := map[int64][]string{}
	for _, hist := range v.History {
		for _, r := range hist {
			if r.First == span.First && r.Last == span.Last {
				hashes[r.Round] = append(hashes[r.Round], r.Hash)
			}
		}
	}
	b := &a.rounds
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.points {
		p := &b.points[i]
		// A report at round R+1 names the weights round R ended with (its theta_0).
		hs, ok := hashes[p.Round+1]
		if !ok || len(hs) < p.Members {
			continue // reports gone from the book: the figures stay as last counted
		}
		p.Members, p.Agreeing = len(hs), 0
		for _, h := range hs {
			if h == p.Hash {
				p.Agreeing++
			}
		}
		p.Agreement = float64(p.Agreeing) / float64(p.Members)
	}
	return apitypes.TrainingRounds{Model: a.model.Name, First: span.First, Last: span.Last, Rounds: append([]apitypes.RoundPoint{}, b.points...)}
}
