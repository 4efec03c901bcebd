package layers

import (
	"encoding/json"
	"os"

	"github.com/neuroshard/neuroshard/internal/atomicfile"
)

// LoadBench reads a result stored by StoreBench when it was measured on cfg's preset and the
// current backend; nil otherwise (missing, damaged or for something else).
func LoadBench(path string, cfg Config) *BenchResult {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var r BenchResult
	if json.Unmarshal(data, &r) != nil || r.Preset != cfg.Name || r.Backend != BackendName() || r.Forward <= 0 {
		return nil
	}
	return &r
}

// StoreBench writes a result atomically.
func StoreBench(path string, r BenchResult) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}
