package cpu

// goKernel is the portable micro-kernel (4 x 16): the FMA chain of every element with fma32,
// which gives the bits of the assembly kernels.
var goKernel = &kernel{name: "go", mr: 4, nr: 16, fn: goMicro, strided: goMicroStrided}

// goMicro reads a packed B panel, which is B in place with a row stride of NR.
func goMicro(kb int, a, b, c []float32, ldc int, load int) {
	goMicroStrided(kb, a, b, 16, c, ldc, load)
}

// goMicroStrided is goMicro with B read in place (row k at b[k*ldb:]).
func goMicroStrided(kb int, a, b []float32, ldb int, c []float32, ldc int, load int) {
	const mr, nr = 4, 16
	var acc [mr][nr]float32
	if load == 1 {
		for i := 0; i < mr; i++ {
			copy(acc[i][:], c[i*ldc:i*ldc+nr])
		}
	}
	for p := 0; p < kb; p++ {
		bp := b[p*ldb : p*ldb+nr]
		for i := 0; i < mr; i++ {
			x := a[p*mr+i]
			row := &acc[i]
			for j := range nr {
				row[j] = fma32(x, bp[j], row[j])
			}
		}
	}
	for i := 0; i < mr; i++ {
		copy(c[i*ldc:i*ldc+nr], acc[i][:])
	}
}
