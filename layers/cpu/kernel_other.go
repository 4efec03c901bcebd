//go:build !amd64 || purego

package cpu

// kernels lists the kernels this CPU runs: the portable one.
func kernels() []*kernel { return []*kernel{goKernel} }
