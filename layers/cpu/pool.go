package cpu

import "sync"

// Float32 values an execution no longer needs go back to a pool that later ops (of this or
// another execution) take their outputs from: a fresh large slice costs the kernel's page
// faults and Go's clearing, more than a memory-bound op itself. The pool keeps at most
// poolBytes; past that, values are left to the garbage collector.
const poolBytes = 512 << 20

var f32Pool = struct {
	sync.Mutex
	free  map[int][][]float32
	bytes int
}{free: map[int][][]float32{}}

// getF32 returns a slice of n values whose contents are arbitrary: the caller writes every
// element.
func getF32(n int) []float32 {
	if n < poolMin {
		return make([]float32, n)
	}
	f32Pool.Lock()
	if l := f32Pool.free[n]; len(l) > 0 {
		s := l[len(l)-1]
		f32Pool.free[n] = l[:len(l)-1]
		f32Pool.bytes -= 4 * n
		f32Pool.Unlock()
		return s
	}
	f32Pool.Unlock()
	return make([]float32, n)
}

// poolMin is the smallest slice worth pooling. At 1024 the values of a decode step at batch 1
// ([1,128], [1,384], one row of scores) were all allocated anew: 19% of the step went to the
// allocator and the collector; at 64 decode went 2,450 -> 2,650 tokens/s (small preset).
const poolMin = 64

// putF32 gives a slice nobody uses any more to the pool.
func putF32(s []float32) {
	n := len(s)
	if n < poolMin || cap(s) != n {
		return
	}
	f32Pool.Lock()
	defer f32Pool.Unlock()
	if f32Pool.bytes+4*n > poolBytes {
		return
	}
	f32Pool.free[n] = append(f32Pool.free[n], s)
	f32Pool.bytes += 4 * n
}
