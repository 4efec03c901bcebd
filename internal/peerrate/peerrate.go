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
