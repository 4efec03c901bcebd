package cpu

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The model's GEMM shapes (m x n x k): training (batch 8 x 64 positions) and decode rows on
// neuroshard-small (d 128, MLP 384) and neuroshard-base (d 512, MLP 1408).
var benchShapes = []shape{
	{512, 384, 128}, {512, 128, 384}, {512, 1408, 512}, {512, 512, 1408}, {1024, 512, 512},
	{1, 384, 128}, {8, 384, 128}, {1, 1408, 512}, {8, 1408, 512},
}

// gflops times Gemm on a shape (best of several runs) and returns GFLOP/s.
func gflops(s shape, threads int) float64 {
	r := rand.New(rand.NewPCG(1, 1))
	a, b, c := randMat(r, s.m*s.k), randMat(r, s.k*s.n), make([]float32, s.m*s.n)
	flop := 2 * float64(s.m) * float64(s.n) * float64(s.k)
	reps := max(1, int(2e8/flop))
	best := time.Duration(1 << 62)
	for trial := 0; trial < 5; trial++ {
		start := time.Now()
		for i := 0; i < reps; i++ {
			Gemm(s.m, s.n, s.k, RowMajor(a, s.k), RowMajor(b, s.n), c, s.n, threads)
		}
		best = min(best, time.Since(start)/time.Duration(reps))
	}
	return flop / best.Seconds() / 1e9
}

// numpyScript times float32 matmul with numpy's BLAS on the same shapes and thread count.
const numpyScript = `
import json, sys, time
import numpy as np
try:
    from threadpoolctl import threadpool_limits, threadpool_info
except ImportError:
    threadpool_limits = None
out = {}
shapes = json.loads(sys.argv[1])
for threads in (1, int(sys.argv[2])):
    ctx = threadpool_limits(limits=threads) if threadpool_limits else None
    for m, n, k in shapes:
        a = np.random.rand(m, k).astype(np.float32); b = np.random.rand(k, n).astype(np.float32)
        flop = 2.0 * m * n * k
        reps = max(1, int(2e8 / flop)); best = 1e9
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(reps): a @ b
            best = min(best, (time.perf_counter() - t) / reps)
        out["%d/%dx%dx%d" % (threads, m, n, k)] = flop / best / 1e9
    if ctx: ctx.unregister() if hasattr(ctx, "unregister") else None
info = threadpool_info() if threadpool_limits else []
out["kernel"] = ",".join("%s %s" % (i.get("internal_api"), i.get("architecture")) for i in info)
print(json.dumps(out))
`

// BenchmarkGemmVsOpenBLAS prints the GEMM's GFLOP/s on the model's shapes beside numpy's
// OpenBLAS sgemm, measured in the same run, at 1 thread and all cores.
func BenchmarkGemmVsOpenBLAS(b *testing.B) {
	threads := runtime.GOMAXPROCS(0)
	var shp [][3]int
	for _, s := range benchShapes {
		shp = append(shp, [3]int{s.m, s.n, s.k})
	}
	js, _ := json.Marshal(shp)
	ref := map[string]any{}
	cmd := exec.Command(python(), "-c", numpyScript, string(js), fmt.Sprint(threads))
	// OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, where set, pin an older kernel: the baseline runs
	// at its best without them.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPENBLAS_CORETYPE=") && !strings.HasPrefix(kv, "OPENBLAS_L2_SIZE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.Output()
	if err == nil {
		err = json.Unmarshal(out, &ref)
	}
	if err != nil {
		b.Logf("no OpenBLAS baseline (python3-numpy, python3-threadpoolctl): %v", err)
	}
	b.Logf("kernel %s; baseline %v", Kernel(), ref["kernel"])
	b.Logf("%-16s %8s %8s %6s | %8s %8s %6s", "m x n x k", "1 thr", "openblas", "ratio", fmt.Sprintf("%d thr", threads), "openblas", "ratio")
	for _, s := range benchShapes {
		key := fmt.Sprintf("%dx%dx%d", s.m, s.n, s.k)
		g1, gn := gflops(s, 1), gflops(s, threads)
		o1, _ := ref[fmt.Sprintf("1/%s", key)].(float64)
		on, _ := ref[fmt.Sprintf("%d/%s", threads, key)].(float64)
		b.Logf("%-16s %8.1f %8.1f %6.2f | %8.1f %8.1f %6.2f", key, g1, o1, g1/o1, gn, on, gn/on)
	}
	for i := 0; i < b.N; i++ {
	}
}

// python is the interpreter the baselines run on: $NEUROSHARD_PYTHON, else Debian's (where
// python3-numpy and python3-torch install), else python3 on the PATH.
func python() string {
	if p := os.Getenv("NEUROSHARD_PYTHON"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return "python3"
}
