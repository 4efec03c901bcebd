package layers

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestHashHelper prints the model hash when run as a helper process.
func TestHashHelper(t *testing.T) {
	if os.Getenv("NEUROSHARD_HASH_HELPER") != "1" {
		t.Skip("helper process only")
	}
	cfg, _ := Preset(DefaultModel)
	full := Span{0, cfg.Layers - 1}
	fmt.Printf("HASH=%s\n", cfg.InitParams(full, 2026).Hash())
}

// Two separate processes initialise the same config and seed to the same model hash.
func TestTwoProcessesAgreeOnInitialHash(t *testing.T) {
	hashes := map[string]bool{}
	for i := 0; i < 2; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), "NEUROSHARD_HASH_HELPER=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		_, h, ok := strings.Cut(string(out), "HASH=")
		if !ok {
			t.Fatalf("helper printed no hash:\n%s", out)
		}
		hashes[strings.Fields(h)[0]] = true
	}
	cfg, _ := Preset(DefaultModel)
	local := cfg.InitParams(Span{0, cfg.Layers - 1}, 2026).Hash()
	if len(hashes) != 1 || !hashes[local] {
		t.Fatalf("hashes differ: processes %v, this process %s", hashes, local)
	}
}
