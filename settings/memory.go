package settings

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrMemorySize is returned for a memory size ParseMemory cannot read.
var ErrMemorySize = errors.New("settings: bad memory size")

// ParseMemory parses a memory size such as "512MB", "4GiB", "2G" or "1073741824".
// Decimal units (KB, MB, GB, TB) are powers of 1000, binary ones (KiB, ..., and the bare K, M,
// G, T) powers of 1024.
func ParseMemory(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%w: memory size %q (try 512MB or 4GiB)", ErrMemorySize, s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%w: memory unit %q in %q (use B, KB, MB, GB, KiB, MiB, GiB)", ErrMemorySize, unit, s)
	}
	b := v * mult
	if b > math.MaxInt64/2 {
		return 0, fmt.Errorf("%w: memory size %q is too large", ErrMemorySize, s)
	}
	return int64(b), nil
}
