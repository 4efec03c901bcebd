package cpu

import (
	"math"
	"os"
)

// active is the kernel Gemm uses: the best this CPU runs whose results match the portable
// kernel bit for bit on a check at start (a kernel that disagrees is never used), or the one
// NEUROSHARD_KERNEL names (avx512, avx2, go) when this CPU runs it: the same bits either way,
// which is what the golden computation test shows by running under each.
var active = choose(os.Getenv("NEUROSHARD_KERNEL"))

func choose(want string) *kernel {
	for _, k := range kernels() {
		if k.name == want && (k == goKernel || agrees(k)) {
			return k
		}
	}
	for _, k := range kernels() {
		if k == goKernel || agrees(k) {
			return k
		}
	}
	return goKernel
}

// agrees runs a small GEMM with edge tiles and two k blocks on kern and on the Go kernel.
func agrees(kern *kernel) bool {
	const m, n, k = 29, 45, kc + 37
	a, b := make([]float32, m*k), make([]float32, k*n)
	for i := range a {
		a[i] = float32(math.Sin(float64(i)))
	}
	for i := range b {
		b[i] = float32(math.Cos(float64(3 * i)))
	}
	x, y := make([]float32, m*n), make([]float32, m*n)
	if gemmWith(kern, m, n, k, RowMajor(a, k), RowMajor(b, n), x, n, 1) != nil ||
		gemmWith(goKernel, m, n, k, RowMajor(a, k), RowMajor(b, n), y, n, 1) != nil {
		return false
	}
	for i := range x {
		if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
			return false
		}
	}
	return true
}

// Kernel names the micro-kernel in use ("avx512", "avx2" or "go").
func Kernel() string { return active.name }

// Kernels names every kernel this CPU can run, best first.
func Kernels() []string {
	var out []string
	for _, k := range kernels() {
		out = append(out, k.name)
	}
	return out
}
