package nodeapi

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cpuSampler turns the process's CPU time into a percentage of the machine's cores, measured
// between two calls (the first call measures since the sampler was made).
type cpuSampler struct {
	mu       sync.Mutex
	lastWall time.Time
	lastCPU  time.Duration
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (s *cpuSampler) percent() float64 {
	now, cpu := time.Now(), processCPU()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastWall.IsZero() {
		s.lastWall, s.lastCPU = now, cpu
		return 0
	}
	wall := now.Sub(s.lastWall)
	if wall < 100*time.Millisecond { // too short to say anything; keep the window open
		return 0
	}
	p := float64(cpu-s.lastCPU) / float64(wall) / float64(runtime.NumCPU()) * 100
	s.lastWall, s.lastCPU = now, cpu
	return float64(int(p*10+0.5)) / 10
}

// residentBytes is the process's resident set size (Linux), or the Go runtime's view of the
// memory it obtained from the OS elsewhere.
func residentBytes() int64 {
	if raw, err := os.ReadFile("/proc/self/statm"); err == nil {
		f := strings.Fields(string(raw))
		if len(f) > 1 {
			if pages, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				return pages * int64(os.Getpagesize())
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.Sys)
}
