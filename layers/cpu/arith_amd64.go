//go:build amd64 && !purego

package cpu

import (
	"github.com/gomlx/gomlx/backends"
	"golang.org/x/sys/cpu"
)

// Row kernels of arith_amd64.s. Each reads and writes n elements; the callers check lengths.

//go:noescape
func vaddVV(dst, a, b *float32, n int)

//go:noescape
func vsubVV(dst, a, b *float32, n int)

//go:noescape
func vmulVV(dst, a, b *float32, n int)

//go:noescape
func vdivVV(dst, a, b *float32, n int)

//go:noescape
func vaddVS(dst, a *float32, s float32, n int)

//go:noescape
func vsubVS(dst, a *float32, s float32, n int)

//go:noescape
func vmulVS(dst, a *float32, s float32, n int)

//go:noescape
func vdivVS(dst, a *float32, s float32, n int)

//go:noescape
func vaddSV(dst, a *float32, s float32, n int)

//go:noescape
func vsubSV(dst, a *float32, s float32, n int)

//go:noescape
func vmulSV(dst, a *float32, s float32, n int)

//go:noescape
func vdivSV(dst, a *float32, s float32, n int)

var (
	hasVecRows = cpu.X86.HasAVX2
	vecVV      = map[backends.OpType]func(dst, a, b *float32, n int){
		backends.OpTypeAdd: vaddVV, backends.OpTypeSub: vsubVV, backends.OpTypeMul: vmulVV, backends.OpTypeDiv: vdivVV}
	vecVS = map[backends.OpType]func(dst, a *float32, s float32, n int){
		backends.OpTypeAdd: vaddVS, backends.OpTypeSub: vsubVS, backends.OpTypeMul: vmulVS, backends.OpTypeDiv: vdivVS}
	vecSV = map[backends.OpType]func(dst, a *float32, s float32, n int){
		backends.OpTypeAdd: vaddSV, backends.OpTypeSub: vsubSV, backends.OpTypeMul: vmulSV, backends.OpTypeDiv: vdivSV}
)

// vecRow runs rowOp's arithmetic with the AVX2 row kernels, when the CPU has them; it
// reports whether it did.
func vecRow(op backends.OpType, row, lr, rr []float32, lv, rv float32) bool {
	n := len(row)
	if !hasVecRows || n < 8 {
		return false
	}
	switch {
	case lr != nil && rr != nil:
		if f := vecVV[op]; f != nil && len(lr) >= n && len(rr) >= n {
			f(&row[0], &lr[0], &rr[0], n)
			return true
		}
	case lr != nil:
		if f := vecVS[op]; f != nil && len(lr) >= n {
			f(&row[0], &lr[0], rv, n)
			return true
		}
	case rr != nil:
		if f := vecSV[op]; f != nil && len(rr) >= n {
			f(&row[0], &rr[0], lv, n)
			return true
		}
	}
	return false
}
