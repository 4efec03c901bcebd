package backoff

import (
	"sync"
	"time"
)

// Keys tracks the backoff of each key. The zero value is ready to use.
type Keys[K comparable] struct {
	// Max bounds the wait (0: two minutes).
	Max time.Duration

	mu    sync.Mutex
	until map[K]time.Time
	wait  map[K]time.Duration
}

// Ready tells whether k may be tried now.
func (b *Keys[K]) Ready(k K) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !time.Now().Before(b.until[k])
}

// Failed starts or doubles k's wait.
func (b *Keys[K]) Failed(k K) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.until == nil {
		b.until, b.wait = map[K]time.Time{}, map[K]time.Duration{}
	}
	limit := b.Max
	if limit <= 0 {
		limit = 2 * time.Minute
	}
	w := min(max(2*b.wait[k], time.Second), limit)
	b.wait[k], b.until[k] = w, time.Now().Add(w)
}

// Succeeded resets k.
func (b *Keys[K]) Succeeded(k K) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.until, k)
	delete(b.wait, k)
}
