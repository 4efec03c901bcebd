package layers

import "testing"

// FuzzParseSpan: a parsed span is well formed and prints back to an equal span.
func FuzzParseSpan(f *testing.F) {
	for _, s := range []string{"0-3", "7", "3-1", "-", "99999999999999999999-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseSpan(s)
		if err != nil {
			return
		}
		if sp.First < 0 || sp.Last < sp.First {
			t.Fatalf("ParseSpan(%q) = %v", s, sp)
		}
		again, err := ParseSpan(sp.String())
		if err != nil || again != sp {
			t.Fatalf("round trip of %v: %v %v", sp, again, err)
		}
	})
}
