package neuro

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParseAmount(t *testing.T) {
	for in, want := range map[string]Amount{
		"0": 0, "100": 100 * Micro, "0.1": 100_000, "12345.678901": 12345_678901, "1.000000": Micro, "007": 7 * Micro,
	} {
		got, err := ParseAmount(in)
		if err != nil || got != want {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "+1", "1e3", "0.1234567", ".5", "5.", "NaN", "Inf", "1,5", "1000000000001", "99999999999999999999"} {
		if _, err := ParseAmount(bad); !errors.Is(err, ErrAmount) {
			t.Errorf("ParseAmount(%q) accepted", bad)
		}
	}
}

func TestAmountJSONAndString(t *testing.T) {
	var v struct {
		Amount Amount `json:"amount"`
	}
	if err := json.Unmarshal([]byte(`{"amount": 100.5}`), &v); err != nil || v.Amount != 100_500_000 {
		t.Fatalf("decode: %d %v", v.Amount, err)
	}
	if err := json.Unmarshal([]byte(`{"amount": 0.1234567}`), &v); err == nil {
		t.Fatal("7 decimal places accepted")
	}
	if err := json.Unmarshal([]byte(`{"amount": "5"}`), &v); err == nil {
		t.Fatal("a string accepted")
	}
	out, _ := json.Marshal(struct {
		A Amount `json:"a"`
	}{2_345_670})
	if string(out) != `{"a":2.34567}` {
		t.Fatalf("encode: %s", out)
	}
	if s := Amount(-1_500_000).String(); s != "-1.5" {
		t.Fatalf("negative: %s", s)
	}
	if _, err := MaxAmount.Add(1); !errors.Is(err, ErrAmount) {
		t.Fatal("overflow past MaxAmount accepted")
	}
	if s, err := Amount(3).Add(-5); err != nil || s != -2 {
		t.Fatalf("add: %d %v", s, err)
	}
}

// FuzzParseAmount: every accepted amount prints back to an equal amount, within bounds.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"100", "0.000001", "12.5", "1e5", "-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAmount(s)
		if err != nil {
			return
		}
		if a < 0 || a > MaxAmount {
			t.Fatalf("%q parsed to %d", s, a)
		}
		b, err := ParseAmount(a.String())
		if err != nil || b != a {
			t.Fatalf("round trip of %q: %s -> %d %v", s, a, b, err)
		}
	})
}
