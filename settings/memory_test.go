package settings

import "testing"

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{
		"1024": 1024, "512MB": 512e6, "4GiB": 4 << 30, "2G": 2 << 30, "1.5 GB": 1.5e9, "0": 0, "64k": 64 << 10,
	} {
		got, err := ParseMemory(in)
		if err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "GB", "-1GB", "4 parsecs", "1e400", "NaN"} {
		if _, err := ParseMemory(bad); err == nil {
			t.Errorf("ParseMemory(%q) accepted", bad)
		}
	}
}

func FuzzParseMemory(f *testing.F) {
	for _, s := range []string{"4GiB", "512MB", "1.5 G", "-1", "1e400", "9999999999999TB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if b, err := ParseMemory(s); err == nil && b < 0 {
			t.Fatalf("ParseMemory(%q) = %d", s, b)
		}
	})
}
