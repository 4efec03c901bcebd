//go:build amd64 && !purego

package cpu

import "golang.org/x/sys/cpu"

// exp8 writes exp32 of n floats (a multiple of 8) from src to dst, 8 lanes at a time
// (exp_amd64.s, AVX2 and FMA). dst may be src.
//
//go:noescape
func exp8(dst, src *float32, n int)

// logistic8 writes logistic32 of n floats (a multiple of 8) from src to dst, 8 lanes at a
// time (exp_amd64.s). dst may be src.
//
//go:noescape
func logistic8(dst, src *float32, n int)

var hasExpVec = cpu.X86.HasAVX2 && cpu.X86.HasFMA
