//go:build !amd64 || purego

package cpu

import "github.com/gomlx/gomlx/backends"

// hasVecRows: no row kernels on this platform; rowOp's loops run.
const hasVecRows = false

func vecRow(backends.OpType, []float32, []float32, []float32, float32, float32) bool { return false }
