//go:build amd64 && !purego

package cpu

import "golang.org/x/sys/cpu"

//go:noescape
func avx512Micro(kb int, a, b, c *float32, ldc int, load int)

//go:noescape
func avx512MicroStrided(kb int, a, b, c *float32, ldc int, load int, ldb int)

//go:noescape
func avx512Row128(kb int, a, b, c *float32, ldb int, load int)

//go:noescape
func avx512Row16(kb int, a, b, c *float32, ldb int, load int)

//go:noescape
func avx512Row64(kb int, a, b, c *float32, ldb int, load int)

//go:noescape
func avx512Row32(kb int, a, b, c *float32, ldb int, load int)

//go:noescape
func avx512Heads4x32(kb int, a *float32, sa int, b *float32, sb int, c *float32, sc int, ldb int)

//go:noescape
func avx512Rows8x32(kb int, a *float32, lda int, b, c *float32, ldb, ldc, load int)

//go:noescape
func avx2Micro(kb int, a, b, c *float32, ldc int, load int)

//go:noescape
func avx2MicroStrided(kb int, a, b, c *float32, ldc int, load int, ldb int)

var (
	avx512Kernel = &kernel{name: "avx512", mr: 12, nr: 32,
		fn: func(kb int, a, b, c []float32, ldc int, load int) {
			_, _, _ = a[12*kb-1], b[32*kb-1], c[11*ldc+31] // the kernel reads and writes exactly these
			avx512Micro(kb, &a[0], &b[0], &c[0], ldc, load)
		},
		strided: func(kb int, a, b []float32, ldb int, c []float32, ldc int, load int) {
			_, _, _ = a[12*kb-1], b[(kb-1)*ldb+31], c[11*ldc+31]
			avx512MicroStrided(kb, &a[0], &b[0], &c[0], ldc, load, ldb)
		},
		row: avx512Row,
		heads4: func(kb int, a []float32, sa int, b []float32, sb int, c []float32, sc int, ldb int) {
			_, _, _ = a[3*sa+kb-1], b[3*sb+(kb-1)*ldb+31], c[3*sc+31] // the kernel reads and writes exactly these
			avx512Heads4x32(kb, &a[0], sa, &b[0], sb, &c[0], sc, ldb)
		},
		rows8: func(kb int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, load int) {
			_, _, _ = a[7*lda+kb-1], b[(kb-1)*ldb+31], c[7*ldc+31] // the kernel reads and writes exactly these
			avx512Rows8x32(kb, &a[0], lda, &b[0], &c[0], ldb, ldc, load)
		}}
	avx2Kernel = &kernel{name: "avx2", mr: 6, nr: 16,
		fn: func(kb int, a, b, c []float32, ldc int, load int) {
			_, _, _ = a[6*kb-1], b[16*kb-1], c[5*ldc+15]
			avx2Micro(kb, &a[0], &b[0], &c[0], ldc, load)
		},
		strided: func(kb int, a, b []float32, ldb int, c []float32, ldc int, load int) {
			_, _, _ = a[6*kb-1], b[(kb-1)*ldb+15], c[5*ldc+15]
			avx2MicroStrided(kb, &a[0], &b[0], &c[0], ldc, load, ldb)
		}}
)

// kernels lists the kernels this CPU runs, best first; the Go path is always last.
func kernels() []*kernel {
	var ks []*kernel
	if cpu.X86.HasAVX512F {
		ks = append(ks, avx512Kernel)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx2Kernel)
	}
	return append(ks, goKernel)
}

// avx512Row is the row kernel on AVX-512: 128 columns at a time (eight chains side by side
// hide the FMA's latency), then 64, 32 and 16 (four, two, one), the last few in Go with the
// same chain.
func avx512Row(kb int, a, b []float32, ldb int, c []float32, n int, load int) {
	_, _ = a[kb-1], c[n-1]
	j := 0
	for ; j+128 <= n; j += 128 {
		_ = b[(kb-1)*ldb+j+127]
		avx512Row128(kb, &a[0], &b[j], &c[j], ldb, load)
	}
	if j+64 <= n {
		_ = b[(kb-1)*ldb+j+63]
		avx512Row64(kb, &a[0], &b[j], &c[j], ldb, load)
		j += 64
	}
	if j+32 <= n {
		_ = b[(kb-1)*ldb+j+31]
		avx512Row32(kb, &a[0], &b[j], &c[j], ldb, load)
		j += 32
	}
	for ; j+16 <= n; j += 16 {
		_ = b[(kb-1)*ldb+j+15]
		avx512Row16(kb, &a[0], &b[j], &c[j], ldb, load)
	}
	rowTail(kb, a, b, ldb, c, j, n, load)
}
