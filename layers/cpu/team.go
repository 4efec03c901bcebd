package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A team of helper goroutines that run the parts of one op beside the caller. Ops come back to
// back while a model runs, and a goroutine started per op costs a thread wake-up (tens of
// microseconds on a VM) that a product of a few hundred microseconds cannot afford: a helper
// spins for a while after its part before it sleeps, so the next op finds it awake, as BLAS
// libraries keep their threads.
type team struct {
	mu      sync.Mutex // one op at a time uses the helpers; others run alone
	helpers []*helper
}

type helper struct {
	job    atomic.Pointer[func()]
	asleep atomic.Bool
	wake   chan struct{}
	done   atomic.Int32
}

// spinFor is how long a helper looks for its next part before it sleeps.
const spinFor = 200 * time.Microsecond

var helpers = &team{}

// run calls every part, the last on the caller, the others on helpers when free (on the
// caller after it otherwise). It returns when all have returned. Which goroutine runs a part
// never changes what the part computes.
func (t *team) run(parts []func()) {
	if len(parts) == 0 {
		return
	}
	if len(parts) == 1 || !t.mu.TryLock() {
		for _, p := range parts {
			p()
		}
		return
	}
	defer t.mu.Unlock()
	for len(t.helpers) < len(parts)-1 {
		h := &helper{wake: make(chan struct{}, 1)}
		go h.loop()
		t.helpers = append(t.helpers, h)
	}
	given := t.helpers[:len(parts)-1]
	for i, h := range given {
		h.done.Store(0)
		p := parts[i]
		h.job.Store(&p)
		if h.asleep.CompareAndSwap(true, false) {
			h.wake <- struct{}{}
		}
	}
	parts[len(parts)-1]()
	for _, h := range given {
		for i := 0; h.done.Load() == 0; i++ {
			if i > 64 {
				runtime.Gosched()
			}
		}
	}
}

func (h *helper) loop() {
	for {
		start := time.Now()
		for i := 0; ; i++ {
			if j := h.job.Swap(nil); j != nil {
				(*j)()
				h.done.Store(1)
				start = time.Now()
				continue
			}
			if i%256 == 255 && time.Since(start) > spinFor {
				break
			}
		}
		// Sleep, unless a part arrived while going to sleep.
		h.asleep.Store(true)
		if j := h.job.Load(); j != nil && h.asleep.CompareAndSwap(true, false) {
			continue
		}
		<-h.wake
	}
}

// elemParallelMin is the fewest values an element-wise op splits over the helpers: at about
// 0.3 ns a value, 32k values are 10 us, and a spinning helper takes its part in about 1.
const elemParallelMin = 1 << 15

// spread calls f on consecutive ranges of 0..n-1, on up to threads goroutines when there are
// at least 2*unit units (else on the caller alone). Element-wise work only: each unit's
// result is the same whoever computes it.
func spread(threads, n, unit int, f func(lo, hi int)) {
	parts := min(threads, n/max(unit, 1))
	if !splits(threads, n, unit) {
		f(0, n)
		return
	}
	per := (n + parts - 1) / parts
	fs := make([]func(), 0, parts)
	for lo := 0; lo < n; lo += per {
		hi := min(lo+per, n)
		fs = append(fs, func() { f(lo, hi) })
	}
	helpers.run(fs)
}

// splits tells whether spread would split n units over threads: callers check it first so
// that the closure they hand spread (allocated, since it goes to the helpers) is made only
// when it is used.
func splits(threads, n, unit int) bool { return min(threads, n/max(unit, 1)) >= 2 }
