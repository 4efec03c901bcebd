package sim

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"
)

func TestZZMem(t *testing.T) {
	if os.Getenv("SIM_MEM") == "" {
		t.Skip()
	}
	done := make(chan struct{})
	go func() {
		time.Sleep(50 * time.Second)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		t.Logf("heap in use %d MB, sys %d MB, goroutines %d", ms.HeapInuse>>20, ms.Sys>>20, runtime.NumGoroutine())
		f, _ := os.Create("/tmp/heap.out")
		pprof.WriteHeapProfile(f)
		f.Close()
		close(done)
	}()
	Run(context.Background(), Config{Peers: 150, Latency: 20 * time.Millisecond, Lookups: 5, Messages: 2, Churn: 0.1, ChurnTime: 5 * time.Second, Seed: 1})
	<-done
}
