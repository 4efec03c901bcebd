package layers

import (
	"fmt"
	"testing"

	"github.com/neuroshard/neuroshard/internal/golden"
)

// TestGoldenModel pins the model hash of every preset's initial weights (a peer computes its
// layers from the config and seed instead of downloading them, so the initialisation must never
// drift), the hash of single-layer spans, and the tokenizer.
func TestGoldenModel(t *testing.T) {
	g := golden.Open(t, "model.txt")
	for _, name := range PresetNames() {
		cfg, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		last := cfg.Layers - 1
		g.Check(fmt.Sprintf("init %s layer %d seed 7", name, last), cfg.InitParams(Span{last, last}, 7).Hash())
		if cfg.TotalParams() <= 20_000_000 { // the base preset's whole model takes too long here
			g.Check(fmt.Sprintf("init %s seed 1", name), cfg.InitParams(Span{0, last}, 1).Hash())
		}
	}
	g.Check("tokens", fmt.Sprint(Encode("Hi ☼\n")))
}
