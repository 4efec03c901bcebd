package layers

import (
	"errors"
	"testing"
)

func TestPresetsAreValid(t *testing.T) {
	for _, name := range PresetNames() {
		c, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := Preset("nope"); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("unknown preset: %v", err)
	}
	small, _ := Preset(DefaultModel)
	// 2*128 + 4*128^2 + 3*128*384 per block.
	if got := small.ParamsPerLayer(); got != 213248 {
		t.Fatalf("params per layer %d", got)
	}
	if got := small.TotalParams(); got != 258*128+8*213248+128+258*128 {
		t.Fatalf("total params %d", got)
	}
}

func TestConfigValidate(t *testing.T) {
	base, _ := Preset(DefaultModel)
	for name, mod := range map[string]func(*Config){
		"empty name":        func(c *Config) { c.Name = "" },
		"slash in name":     func(c *Config) { c.Name = "a/b" },
		"zero layers":       func(c *Config) { c.Layers = 0 },
		"heads not divisor": func(c *Config) { c.Heads = 3 },
		"odd head dim":      func(c *Config) { c.DModel, c.Heads = 6, 2 },
	} {
		c := base
		mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseSpan(t *testing.T) {
	for in, want := range map[string]Span{"0-3": {0, 3}, "5": {5, 5}, " 2 - 7 ": {2, 7}} {
		got, err := ParseSpan(in)
		if err != nil || got != want {
			t.Errorf("ParseSpan(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "a-b", "3-1", "-1-2", "1-", "1-2-3"} {
		if _, err := ParseSpan(bad); !errors.Is(err, ErrInvalidSpan) {
			t.Errorf("ParseSpan(%q) accepted: %v", bad, err)
		}
	}
	if err := (Span{6, 8}).CheckIn(8); !errors.Is(err, ErrInvalidSpan) {
		t.Fatal("span past the model accepted")
	}
	if s := (Span{2, 4}); s.Len() != 3 || !s.Contains(3) || s.Contains(5) || s.String() != "2-4" {
		t.Fatalf("span helpers: %v", s)
	}
}

func TestHumanParams(t *testing.T) {
	for n, want := range map[int64]string{999: "999", 1500: "1.5K", 1_790_000: "1.8M", 9_200_000_000: "9.2B"} {
		if got := HumanParams(n); got != want {
			t.Errorf("HumanParams(%d) = %s, want %s", n, got, want)
		}
	}
}
