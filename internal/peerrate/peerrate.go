// Package peerrate keeps one x/time/rate limiter per key (a peer), made on first use with the
// same limit and burst, in a bounded map: past MaxKeys the map starts again, which only hands
// out fresh bursts (an attacker with many identities gains nothing it could not get by
// having them).
package peerrate

import (
	"sync"

	"golang.org/x/time/rate"
)

// MaxKeys bounds the keys kept.
const MaxKeys = 4096

// Limiters is a bounded map of limiters; the zero value is not usable, use New.
type Limiters[K comparable] struct {
	mu    sync.Mutex
	limit rate.Limit
	burst int
	by    map[K]*rate.Limiter
}

// New makes limiters of the given limit and burst.
func New[K comparable](limit rate.Limit, burst int) *Limiters[K] {
	return &Limiters[K]{limit: limit, burst: burst}
}

// Get is k's limiter.
func (l *Limiters[K]) Get(k K) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.by == nil || len(l.by) >= MaxKeys {
		l.by = map[K]*rate.Limiter{}
	}
	lim := l.by[k]
	if lim == nil {
		lim = rate.NewLimiter(l.limit, l.burst)
		l.by[k] = lim
	}
	return lim
}
