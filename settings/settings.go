package settings

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"runtime"
	"sync"

	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/internal/atomicfile"
)

// Settings are the parts of the configuration PATCH /api/v1/config may change. They live in
// the data dir, so a change survives a restart.
type Settings struct {
	Training  TrainingSettings `json:"training"`
	Resources ResourceSettings `json:"resources"`
}

// TrainingSettings configure local training.
type TrainingSettings struct {
	Enabled      bool    `json:"enabled"`
	BatchSize    int     `json:"batch_size"`
	LearningRate float64 `json:"learning_rate"`
	DiLoCoSteps  int     `json:"diloco_steps"`
	// Compression of the pseudo-gradients this node sends (and, as an aggregator, of the
	// round's result): none, fp16 or int8. Replicas may differ; the result is applied from
	// the same bytes everywhere, so they still agree bit for bit.
	Compression string `json:"compression"`
	// OuterLR and OuterMomentum are DiLoCo's outer Nesterov step. Every replica of a span
	// must use the same: an aggregator refuses contributions made for other settings.
	OuterLR       float64 `json:"outer_lr"`
	OuterMomentum float64 `json:"outer_momentum"`
}

// ResourceSettings bound what the node uses of the machine.
type ResourceSettings struct {
	MaxMemoryGB float64 `json:"max_memory_gb"`
	CPUThreads  int     `json:"cpu_threads"`
}

// DefaultMaxMemory is the memory budget when neither a flag nor a stored setting gives one.
const DefaultMaxMemory = 4 << 30

// DefaultSettings are seed 001's configuration defaults.
func DefaultSettings() Settings {
	return Settings{
		Training: TrainingSettings{Enabled: true, BatchSize: 8, LearningRate: 1e-4, DiLoCoSteps: 500, Compression: "fp16",
			OuterLR: diloco.DefaultOuterLR, OuterMomentum: diloco.DefaultOuterMomentum},
		Resources: ResourceSettings{MaxMemoryGB: float64(DefaultMaxMemory) / (1 << 30), CPUThreads: runtime.NumCPU()},
	}
}

// Validate checks every field's range.
func (s Settings) Validate() error {
	t, r := s.Training, s.Resources
	check := []struct {
		field string
		ok    bool
		want  string
	}{
		{"training.batch_size", t.BatchSize >= 1 && t.BatchSize <= 4096, "an integer in 1-4096"},
		{"training.learning_rate", t.LearningRate > 0 && t.LearningRate <= 1 && !math.IsNaN(t.LearningRate), "a number in (0, 1]"},
		{"training.diloco_steps", t.DiLoCoSteps >= 1 && t.DiLoCoSteps <= 1_000_000, "an integer in 1-1000000"},
		{"training.compression", ValidCompression(t.Compression), "none, fp16 or int8"},
		{"training.outer_lr", t.OuterLR > 0 && t.OuterLR <= 10, "a number in (0, 10]"},
		{"training.outer_momentum", t.OuterMomentum >= 0 && t.OuterMomentum < 1, "a number in [0, 1)"},
		{"resources.max_memory_gb", r.MaxMemoryGB > 0 && r.MaxMemoryGB <= 1<<20 && !math.IsNaN(r.MaxMemoryGB), "a number in (0, 1048576]"},
		{"resources.cpu_threads", r.CPUThreads >= 1 && r.CPUThreads <= 1024, "an integer in 1-1024"},
	}
	for _, c := range check {
		if !c.ok {
			return apitypes.InvalidRequest(fmt.Sprintf("%s must be %s", c.field, c.want), map[string]any{"field": c.field, "expected": c.want})
		}
	}
	return nil
}

// MaxMemoryBytes is the memory budget in bytes.
func (s Settings) MaxMemoryBytes() int64 { return int64(s.Resources.MaxMemoryGB * (1 << 30)) }

// Store guards the settings and their file.
type Store struct {
	mu   sync.Mutex
	path string
	cur  Settings
}

// Load reads the settings stored at path, or the defaults when there are none.
func Load(path string) (*Store, error) {
	s := DefaultSettings()
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("settings: %s are corrupt: %w", path, err)
		}
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("settings: %s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("settings: read: %w", err)
	}
	return &Store{path: path, cur: s}, nil
}

// Override changes the settings for this run only (flags): nothing is stored.
func (st *Store) Override(f func(*Settings)) {
	st.mu.Lock()
	defer st.mu.Unlock()
	f(&st.cur)
}

// Get returns the current settings.
func (st *Store) Get() Settings {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.cur
}

// Apply validates a patch as a whole, stores it and returns the changed fields and whether
// the node must restart for them to take effect. A patch that fails changes nothing.
func (st *Store) Apply(p apitypes.ConfigPatch) (apitypes.ConfigPatchResult, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	next := st.cur
	var updated []string
	restart := false
	set := func(name string, changed bool, needsRestart bool) {
		updated = append(updated, name)
		if changed && needsRestart {
			restart = true
		}
	}
	if t := p.Training; t != nil {
		if t.Enabled != nil {
			set("training.enabled", next.Training.Enabled != *t.Enabled, false)
			next.Training.Enabled = *t.Enabled
		}
		if t.BatchSize != nil {
			set("training.batch_size", next.Training.BatchSize != *t.BatchSize, false)
			next.Training.BatchSize = *t.BatchSize
		}
		if t.LearningRate != nil {
			set("training.learning_rate", next.Training.LearningRate != *t.LearningRate, false)
			next.Training.LearningRate = *t.LearningRate
		}
		if t.DiLoCoSteps != nil {
			set("training.diloco_steps", next.Training.DiLoCoSteps != *t.DiLoCoSteps, false)
			next.Training.DiLoCoSteps = *t.DiLoCoSteps
		}
		if t.Compression != nil {
			set("training.compression", next.Training.Compression != *t.Compression, false)
			next.Training.Compression = *t.Compression
		}
		if t.OuterLR != nil {
			set("training.outer_lr", next.Training.OuterLR != *t.OuterLR, false)
			next.Training.OuterLR = *t.OuterLR
		}
		if t.OuterMomentum != nil {
			set("training.outer_momentum", next.Training.OuterMomentum != *t.OuterMomentum, false)
			next.Training.OuterMomentum = *t.OuterMomentum
		}
	}
	if r := p.Resources; r != nil {
		// The layer span and the backend's threads are chosen at start.
		if r.MaxMemoryGB != nil {
			set("resources.max_memory_gb", next.Resources.MaxMemoryGB != *r.MaxMemoryGB, true)
			next.Resources.MaxMemoryGB = *r.MaxMemoryGB
		}
		if r.CPUThreads != nil {
			set("resources.cpu_threads", next.Resources.CPUThreads != *r.CPUThreads, true)
			next.Resources.CPUThreads = *r.CPUThreads
		}
	}
	if len(updated) == 0 {
		return apitypes.ConfigPatchResult{}, apitypes.InvalidRequest("the patch names no field to change",
			map[string]any{"fields": []string{"training.enabled", "training.batch_size", "training.learning_rate", "training.diloco_steps", "resources.max_memory_gb", "resources.cpu_threads"}})
	}
	if err := next.Validate(); err != nil {
		return apitypes.ConfigPatchResult{}, err
	}
	raw, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return apitypes.ConfigPatchResult{}, err
	}
	if err := atomicfile.Write(st.path, raw, 0o600); err != nil {
		return apitypes.ConfigPatchResult{}, fmt.Errorf("settings: store: %w", err)
	}
	st.cur = next
	return apitypes.ConfigPatchResult{Success: true, Updated: updated, RestartRequired: restart}, nil
}

// ValidCompression tells whether s names a pseudo-gradient compression.
func ValidCompression(s string) bool {
	_, err := diloco.ParseCompression(s)
	return err == nil
}

// Codec is the pseudo-gradient compression the settings name.
func (t TrainingSettings) Codec() diloco.Compression {
	c, _ := diloco.ParseCompression(t.Compression) // checked by Validate
	return c
}
