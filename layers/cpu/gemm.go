package cpu

import (
	"fmt"
	"runtime"
	"sync"
)

// Blocking: a KC x NR sliver of packed B stays in L1 while the micro-kernel streams an MR-row
// panel of packed A; MC rows of A are packed at a time (L2).
const (
	kc = 256
	mc = 96
)

// parallelMin is the work (m*n*k multiply-adds) below which a GEMM runs on one goroutine:
// starting workers costs more than it saves.
const parallelMin = 1 << 19

// Mat is a strided view of a row-major matrix: element (i, j) is Data[i*RowStride+j*ColStride].
// A transposed operand is the same data with the strides swapped.
type Mat struct {
	Data                 []float32
	RowStride, ColStride int
}

// RowMajor views data as a rows x cols row-major matrix.
func RowMajor(data []float32, cols int) Mat { return Mat{Data: data, RowStride: cols, ColStride: 1} }

// T is the transpose of m (no copy).
func (m Mat) T() Mat { return Mat{Data: m.Data, RowStride: m.ColStride, ColStride: m.RowStride} }

// at is the offset of element (i, j).
func (m Mat) at(i, j int) int { return i*m.RowStride + j*m.ColStride }

// check verifies that a rows x cols view stays inside Data.
func (m Mat) check(what string, rows, cols int) error {
	if rows == 0 || cols == 0 {
		return nil
	}
	if m.RowStride < 0 || m.ColStride < 0 {
		return fmt.Errorf("cpu: %s has negative strides", what)
	}
	if last := m.at(rows-1, cols-1); last >= len(m.Data) {
		return fmt.Errorf("cpu: %s [%d x %d] with strides (%d, %d) needs %d values, has %d", what, rows, cols, m.RowStride, m.ColStride, last+1, len(m.Data))
	}
	return nil
}

// Gemm computes C = A·B for A [m x k], B [k x n] and a row-major C [m x n] with leading
// dimension ldc, on up to threads goroutines (0: GOMAXPROCS). Each element of C is the fixed
// FMA chain the package documents, whatever threads, m or the CPU's kernel.
func Gemm(m, n, k int, a, b Mat, c []float32, ldc, threads int) error {
	return gemmWith(active, m, n, k, a, b, c, ldc, threads)
}

func gemmWith(kern *kernel, m, n, k int, a, b Mat, c []float32, ldc, threads int) error {
	if m < 0 || n < 0 || k < 0 {
		return fmt.Errorf("cpu: gemm of negative size %d x %d x %d", m, n, k)
	}
	if err := a.check("A", m, k); err != nil {
		return err
	}
	if err := b.check("B", k, n); err != nil {
		return err
	}
	if m > 0 && n > 0 && (ldc < n || (m-1)*ldc+n > len(c)) {
		return fmt.Errorf("cpu: C [%d x %d] with leading dimension %d does not fit in %d values", m, n, ldc, len(c))
	}
	if m == 0 || n == 0 {
		return nil
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+n])
		}
		return nil
	}
	panels := (n + kern.nr - 1) / kern.nr
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	threads = min(threads, panels)
	if m*n*k < parallelMin {
		threads = 1
	}
	if threads == 1 {
		kern.block(m, n, k, a, b, c, ldc, 0, panels)
		return nil
	}
	// Few column panels and many rows (a narrow product in training): the threads take bands
	// of rows instead of panels of columns. Either way each output is the same chain.
	var parts []func()
	if panels <= 2*threads && m >= 4*kern.mr*threads {
		band := (m/threads + kern.mr - 1) / kern.mr * kern.mr
		for i0 := 0; i0 < m; i0 += band {
			rows := min(band, m-i0)
			sub := Mat{Data: a.Data[a.at(i0, 0):], RowStride: a.RowStride, ColStride: a.ColStride}
			parts = append(parts, func() { kern.block(rows, n, k, sub, b, c[i0*ldc:], ldc, 0, panels) })
		}
	} else {
		per := (panels + threads - 1) / threads
		for p0 := 0; p0 < panels; p0 += per {
			p1 := min(p0+per, panels)
			parts = append(parts, func() { kern.block(m, n, k, a, b, c, ldc, p0, p1) })
		}
	}
	helpers.run(parts)
	return nil
}

// kernel is a micro-kernel computing an mr x nr tile of C from packed panels: fn(kc, a, b, c,
// ldc, load) runs kc steps of the FMA chain, starting from the tile's values in c when load is
// 1, from zero otherwise, and stores the tile.
type kernel struct {
	name   string
	mr, nr int
	fn     func(kc int, a, b, c []float32, ldc int, load int)
	// strided is fn reading B in place, row k of the tile at b[k*ldb:]: for a few rows of A
	// (decoding) packing B would cost as much as the product.
	strided func(kc int, a, b []float32, ldb int, c []float32, ldc int, load int)
	// row, when the kernel has one, is one row of A (kc values in a) against n columns of B
	// read in place: for fewer rows than a tile (decoding), a tile's kernel would compute the
	// missing rows too.
	row func(kc int, a, b []float32, ldb int, c []float32, n int, load int)
	// rows8, when set, computes 8 rows by 32 columns with A (rows lda apart) and B read in
	// place: each element the row function's chain, B read once for the eight rows instead
	// of once per row.
	rows8 func(kb int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, load int)
	// heads4, when set, computes four one-row products of 32 columns side by side, from zero:
	// head h's row at a[h*sa:], its B at b[h*sb:] with rows ldb apart, its output at c[h*sc:].
	heads4 func(kb int, a []float32, sa int, b []float32, sb int, c []float32, sc int, ldb int)
	pool   sync.Pool // *buffers
}

// rowKernelRows is the most rows of A computed row by row with the kernel's row function: each
// row reads B again, which beyond a few rows costs more than a tile's unused rows. At 8 rows
// (a batch of 8 decoding) the 12-row tile computed 4 rows of nothing: decode at batch 8 went
// 3,750 -> 4,100 tokens/s on neuroshard-small, 358 -> 391 on base, rows moved from the tile
// to the row kernel (the same FMA chain per element, so the same bits).
const rowKernelRows = 8

// unpackedRows is the most rows of A for which B is read in place instead of packed.
const unpackedRows = 16

type buffers struct{ a, b, tile []float32 }

func (kern *kernel) buffers() *buffers {
	if v, ok := kern.pool.Get().(*buffers); ok {
		return v
	}
	return &buffers{a: make([]float32, mc*kc), b: make([]float32, 0), tile: make([]float32, kern.mr*kern.nr)}
}

// block computes the columns of C in NR-panels [p0, p1), all rows.
func (kern *kernel) block(m, n, k int, a, b Mat, c []float32, ldc, p0, p1 int) {
	mr, nr := kern.mr, kern.nr
	buf := kern.buffers()
	defer kern.pool.Put(buf)
	j0, j1 := p0*nr, min(p1*nr, n)
	if need := min(k, kc) * (p1 - p0) * nr; cap(buf.b) < need {
		buf.b = make([]float32, need)
	}
	for pc := 0; pc < k; pc += kc {
		kb := min(kc, k-pc)
		load := 0
		if pc > 0 {
			load = 1
		}
		inPlace := m <= unpackedRows && b.ColStride == 1
		if inPlace && kern.rows8 != nil && m >= 5 && m <= 8 {
			kern.rowsBlock(buf, m, kb, pc, load, a, b, c, ldc, j0, j1)
			continue
		}
		if inPlace && kern.row != nil && m <= rowKernelRows {
			for i := 0; i < m; i++ {
				ar := a.Data[a.at(i, pc):]
				if a.ColStride != 1 {
					ar = buf.a[:kb]
					for p := range kb {
						ar[p] = a.Data[a.at(i, pc+p)]
					}
				}
				kern.row(kb, ar, b.Data[b.at(pc, j0):], b.RowStride, c[i*ldc+j0:], j1-j0, load)
			}
			continue
		}
		if inPlace {
			// Only a ragged last panel is packed.
			if last := j0 + (j1-j0)/nr*nr; last < j1 {
				packB(buf.b, b, pc, kb, last, j1, nr)
			}
		} else {
			packB(buf.b, b, pc, kb, j0, j1, nr)
		}
		for ic := 0; ic < m; ic += mc {
			mb := min(mc, m-ic)
			packA(buf.a, a, ic, mb, pc, kb, mr)
			for jr := j0; jr < j1; jr += nr {
				nb := min(nr, j1-jr)
				var bp []float32
				switch {
				case !inPlace:
					bp = buf.b[(jr-j0)*kb : (jr-j0+nr)*kb]
				case nb < nr:
					bp = buf.b[:nr*kb]
				}
				for ir := 0; ir < mb; ir += mr {
					ap := buf.a[ir*kb : (ir+mr)*kb]
					rows := min(mr, mb-ir)
					off := (ic+ir)*ldc + jr
					if bp == nil { // B in place, a whole panel
						if rows == mr {
							kern.strided(kb, ap, b.Data[b.at(pc, jr):], b.RowStride, c[off:], ldc, load)
							continue
						}
						t := buf.tile
						if load == 1 {
							for i := 0; i < rows; i++ {
								copy(t[i*nr:i*nr+nr], c[off+i*ldc:off+i*ldc+nr])
							}
						}
						kern.strided(kb, ap, b.Data[b.at(pc, jr):], b.RowStride, t, nr, load)
						for i := 0; i < rows; i++ {
							copy(c[off+i*ldc:off+i*ldc+nr], t[i*nr:i*nr+nr])
						}
						continue
					}
					if rows == mr && nb == nr {
						kern.fn(kb, ap, bp, c[off:], ldc, load)
						continue
					}
					// An edge tile: run the kernel on a full tile and keep its valid part.
					t := buf.tile
					if load == 1 {
						for i := 0; i < rows; i++ {
							copy(t[i*nr:i*nr+nb], c[off+i*ldc:off+i*ldc+nb])
						}
					}
					kern.fn(kb, ap, bp, t, nr, load)
					for i := 0; i < rows; i++ {
						copy(c[off+i*ldc:off+i*ldc+nb], t[i*nr:i*nr+nb])
					}
				}
			}
		}
	}
}

// rowsBlock computes rows [0, m) (5 to 8) of C's columns [j0, j1) for B's rows [pc, pc+kb),
// with the eight-row kernel: 32 columns at a time for all the rows (fewer than eight padded
// with zero rows into a tile), the columns left row by row. Each row's chain is its own, so
// padding changes no bit.
func (kern *kernel) rowsBlock(buf *buffers, m, kb, pc, load int, a, b Mat, c []float32, ldc, j0, j1 int) {
	// A read in place when it is eight row-major rows, else copied row by row into eight
	// (zero rows for the missing ones).
	ap, lda := a.Data[a.at(0, pc):], a.RowStride
	if m < 8 || a.ColStride != 1 {
		ap, lda = buf.a[:8*kb], kb
		packRows8(ap, a, m, pc, kb)
	}
	bp := b.Data[b.at(pc, 0):]
	j := j0
	for ; j+32 <= j1; j += 32 {
		if m == 8 {
			kern.rows8(kb, ap, lda, bp[j:], b.RowStride, c[j:], ldc, load)
			continue
		}
		tile := buf.tile[:8*32]
		if load != 0 {
			for i := range m {
				copy(tile[i*32:(i+1)*32], c[i*ldc+j:i*ldc+j+32])
			}
		}
		kern.rows8(kb, ap, lda, bp[j:], b.RowStride, tile, 32, load)
		for i := range m {
			copy(c[i*ldc+j:i*ldc+j+32], tile[i*32:(i+1)*32])
		}
	}
	if j < j1 {
		for i := range m {
			kern.row(kb, ap[i*lda:i*lda+kb], bp[j:], b.RowStride, c[i*ldc+j:], j1-j, load)
		}
	}
}

// packRows12 packs twelve row-major rows of A from (i0, p0), kb long, into a panel: panel[12p+i]
// is row i at p. It writes the panel in order and reads the twelve rows side by side, each in
// order: element by element in the other order (each write 12 values from the last), packing
// took 40% of a 512x128x384 product.
func packRows12(panel []float32, a Mat, i0, p0, kb int) {
	row := func(i int) []float32 { off := a.at(i0+i, p0); return a.Data[off : off+kb] }
	r0, r1, r2, r3, r4, r5 := row(0), row(1), row(2), row(3), row(4), row(5)
	r6, r7, r8, r9, r10, r11 := row(6), row(7), row(8), row(9), row(10), row(11)
	panel = panel[:12*kb]
	for p := range r0 {
		out := panel[12*p : 12*p+12 : 12*p+12]
		out[0], out[1], out[2], out[3], out[4], out[5] = r0[p], r1[p], r2[p], r3[p], r4[p], r5[p]
		out[6], out[7], out[8], out[9], out[10], out[11] = r6[p], r7[p], r8[p], r9[p], r10[p], r11[p]
	}
}

// packRows8 copies rows [0, m) of A, columns [p0, p0+kb), into ap as eight rows of kb
// values; rows m..7 are zero.
func packRows8(ap []float32, a Mat, m, p0, kb int) {
	for i := range 8 {
		row := ap[i*kb : (i+1)*kb]
		switch {
		case i >= m:
			clear(row)
		case a.ColStride == 1:
			copy(row, a.Data[a.at(i, p0):])
		default:
			for p := range row {
				row[p] = a.Data[a.at(i, p0+p)]
			}
		}
	}
}

// packA copies A[i0:i0+mb, p0:p0+kb] into MR-row panels: panel r holds, for each k, the MR
// values of its rows (rows past mb are zero).
func packA(dst []float32, a Mat, i0, mb, p0, kb, mr int) {
	for ir := 0; ir < mb; ir += mr {
		panel := dst[ir*kb : (ir+mr)*kb]
		rows := min(mr, mb-ir)
		if mr == 12 && rows == 12 && a.ColStride == 1 {
			packRows12(panel, a, i0+ir, p0, kb)
			continue
		}
		if a.RowStride == 1 {
			// A stored transposed (a weight gradient's X^T): each step of the panel is
			// consecutive in memory, one copy instead of a strided read per value.
			for p := 0; p < kb; p++ {
				off := a.at(i0+ir, p0+p)
				copy(panel[p*mr:p*mr+rows], a.Data[off:off+rows])
				clear(panel[p*mr+rows : (p+1)*mr])
			}
			continue
		}
		for i := 0; i < mr; i++ {
			if i >= rows {
				for p := 0; p < kb; p++ {
					panel[p*mr+i] = 0
				}
				continue
			}
			off := a.at(i0+ir+i, p0)
			for p := 0; p < kb; p++ {
				panel[p*mr+i] = a.Data[off+p*a.ColStride]
			}
		}
	}
}

// packB copies B[p0:p0+kb, j0:j1] into NR-column panels: panel q holds, for each k, the NR
// values of its columns (columns past j1 are zero).
func packB(dst []float32, b Mat, p0, kb, j0, j1, nr int) {
	for jr := j0; jr < j1; jr += nr {
		panel := dst[(jr-j0)*kb : (jr-j0+nr)*kb]
		cols := min(nr, j1-jr)
		for p := 0; p < kb; p++ {
			row := panel[p*nr : (p+1)*nr]
			off := b.at(p0+p, jr)
			if b.ColStride == 1 {
				copy(row[:cols], b.Data[off:off+cols])
			} else {
				for j := 0; j < cols; j++ {
					row[j] = b.Data[off+j*b.ColStride]
				}
			}
			clear(row[cols:])
		}
	}
}

// rowTail computes columns [j0, n) of one row the slow way: each element's FMA chain over k.
func rowTail(kb int, a, b []float32, ldb int, c []float32, j0, n int, load int) {
	for j := j0; j < n; j++ {
		var acc float32
		if load == 1 {
			acc = c[j]
		}
		for p := 0; p < kb; p++ {
			acc = fma32(a[p], b[p*ldb+j], acc)
		}
		c[j] = acc
	}
}
