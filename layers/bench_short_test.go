package layers

import (
	"encoding/json"
	"testing"
)

// The short benchmark measures every workload and names them as `neuroshard bench --json`
// documents.
func TestBenchShort(t *testing.T) {
	cfg, _ := Preset("neuroshard-tiny")
	var seen []string
	r, err := Bench(cfg, BenchOptions{Short: true, Progress: func(w string) { seen = append(seen, w) }})
	if err != nil {
		t.Fatal(err)
	}
	if r.Forward <= 0 || r.Train <= 0 || r.Decode <= 0 || r.DecodeBatch8 <= 0 || r.Prefill <= 0 || r.Threads < 1 || len(seen) != 5 {
		t.Fatalf("%+v, workloads %v", r, seen)
	}
	var m map[string]any
	data, _ := json.Marshal(r)
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"preset", "backend", "threads", "forward_tokens_per_s", "train_tokens_per_s",
		"decode_tokens_per_s", "decode_batch8_tokens_per_s", "prefill_tokens_per_s"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, data)
		}
	}
}
