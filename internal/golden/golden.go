package golden

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden files with the values the code produces now")

// Set is a named file of "name: value" lines under testdata/golden.
type Set struct {
	t      testing.TB
	path   string
	want   map[string]string
	got    map[string]string
	failed bool
}

// Open reads testdata/golden/<file> (empty under -update) and rewrites it when the test ends
// under -update.
func Open(t testing.TB, file string) *Set {
	t.Helper()
	s := &Set{t: t, path: filepath.Join("testdata", "golden", file), want: map[string]string{}, got: map[string]string{}}
	if !*update {
		b, err := os.ReadFile(s.path)
		if err != nil {
			t.Fatalf("golden: %v (run the test with -update to create it)", err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				t.Fatalf("golden: %s:%d: want \"name: value\", got %q", s.path, i+1, line)
			}
			s.want[k] = v
		}
	}
	t.Cleanup(s.finish)
	return s
}

// Check compares value with the pinned one named name.
func (s *Set) Check(name, value string) {
	s.t.Helper()
	if strings.ContainsAny(name, ":\n") || strings.Contains(value, "\n") {
		s.t.Fatalf("golden: name %q or value has a separator in it", name)
	}
	s.got[name] = value
	if *update {
		return
	}
	want, ok := s.want[name]
	switch {
	case !ok:
		s.t.Errorf("golden %s: no value pinned for %q (run with -update)", s.path, name)
	case want != value:
		s.t.Errorf("golden %s: %s changed\n got: %s\nwant: %s\nPeers built before this change would disagree; if it is intended, run with -update and say so in the commit.", s.path, name, value, want)
	}
}

func (s *Set) finish() {
	if !*update || s.t.Failed() {
		return
	}
	names := make([]string, 0, len(s.got))
	for k := range s.got {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("# Pinned by the package's golden test; after an intended change, rewrite from the package directory: go test -run Golden -update\n")
	for _, k := range names {
		fmt.Fprintf(&b, "%s: %s\n", k, s.got[k])
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(s.path, []byte(b.String()), 0o644); err != nil {
		s.t.Fatal(err)
	}
}
