// Package cpu holds the project's CPU kernels: a packed, cache-blocked single-precision GEMM
// with Go assembly micro-kernels for AVX-512 and AVX2+FMA and a portable Go path, parallel
// over output tiles.
//
// Determinism is the contract. Every output element C[i][j] is one chain of fused
// multiply-adds over k in increasing order, starting from zero:
//
//	c = 0; for k := 0; k < K; k++ { c = fma(A[i][k], B[k][j], c) }
//
// rounded once per step (FMA). Nothing about how the work is cut changes that chain: tiles and
// threads split the output (rows and columns), never k, and k blocks hand the partial sum on
// in float32, which is exact. So the bits of C do not depend on the thread count, on M (a
// batch of 8 rows gives each row the bits it gets alone, so prefill equals token-by-token),
// or on the instruction set: the AVX-512 and AVX2 kernels and the Go path (which emulates a
// float32 FMA exactly with round-to-odd) agree bit for bit.
package cpu
