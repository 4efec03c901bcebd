//go:build !amd64 || purego

package cpu

// hasExpVec: no vector exp on this platform; expRow runs exp32.
const hasExpVec = false

func exp8(dst, src *float32, n int) { panic("cpu: exp8 without a kernel") }

func logistic8(dst, src *float32, n int) { panic("cpu: logistic8 without a kernel") }
