package layers

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCheckpointRoundTripAndCorruption(t *testing.T) {
	cfg := tinyConfig()
	span := Span{2, 3}
	p := cfg.InitParams(span, 5)
	path := filepath.Join(t.TempDir(), "ckpt", "layers-2-3.bin")
	if err := SaveCheckpoint(path, CheckpointMeta{Model: cfg.Name, Span: span, Step: 7, Round: 2}, p); err != nil {
		t.Fatal(err)
	}
	meta, q, err := LoadCheckpoint(path, cfg, span)
	if err != nil {
		t.Fatal(err)
	}
	if q.Hash() != p.Hash() || meta.Step != 7 || meta.Round != 2 || meta.Hash != p.Hash() {
		t.Fatalf("round trip: %+v", meta)
	}
	raw, _ := os.ReadFile(path)
	flipped := bytes.Clone(raw)
	flipped[len(flipped)-100] ^= 0x01 // one bit of one weight
	truncated := raw[:len(raw)-3]
	for name, tc := range map[string]struct {
		data []byte
		span Span
	}{
		"one bit flipped":  {flipped, span},
		"truncated":        {truncated, span},
		"another span":     {raw, Span{1, 3}},
		"not a checkpoint": {[]byte("hello world, this is not a checkpoint"), span},
		"empty":            {nil, span},
	} {
		if _, _, err := DecodeParams(bytes.NewReader(tc.data), cfg, tc.span); !errors.Is(err, ErrBadCheckpoint) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzDecodeParams: no input makes the decoder panic or accept weights that fail their hash.
func FuzzDecodeParams(f *testing.F) {
	cfg := Config{Name: "fuzz", Vocab: 8, DModel: 4, Layers: 2, Heads: 2, MLPHidden: 4, Context: 4}
	span := Span{1, 1}
	var buf bytes.Buffer
	EncodeParams(&buf, CheckpointMeta{Model: cfg.Name, Span: span}, cfg.InitParams(span, 1))
	f.Add(buf.Bytes())
	f.Add([]byte(checkpointMagic + "\xff\xff\xff\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		meta, p, err := DecodeParams(bytes.NewReader(data), cfg, span)
		if err != nil {
			return
		}
		if p.Hash() != meta.Hash {
			t.Fatal("accepted weights that do not match their hash")
		}
	})
}

func TestTrainingLowersValidationLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	data, err := os.ReadFile("../testdata/tinyshakespeare.txt")
	if err != nil {
		t.Fatal(err)
	}
	corpus, err := NewCorpus(data, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig()
	var lp LocalPipeline
	var opts []*AdamW
	for _, sp := range []Span{{0, 1}, {2, 3}} {
		st, err := NewStage(cfg, sp, cfg.InitParams(sp, 3))
		if err != nil {
			t.Fatal(err)
		}
		lp = append(lp, st)
		opts = append(opts, NewAdamW(3e-3))
	}
	val := ValidationBatches(corpus.Val, 8, 32, 8)
	before, err := lp.Loss(val)
	if err != nil {
		t.Fatal(err)
	}
	batches, _ := NewBatcher(corpus.Train, 8, 32, 1)
	const steps = 150
	for i := 0; i < steps; i++ {
		tok, tg := batches.Next()
		if _, err := lp.TrainStep(opts, tok, tg); err != nil {
			t.Fatal(err)
		}
	}
	after, err := lp.Loss(val)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("validation loss %.3f -> %.3f after %d steps of [8, 32]", before, after, steps)
	// The margin: from ln(258) ≈ 5.55 to below the byte-unigram entropy region.
	if before-after < 2.0 {
		t.Fatalf("validation loss fell by %.3f, want at least 2.0", before-after)
	}
}
