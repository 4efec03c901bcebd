package tasks

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A byte flipped in any file of the task store never keeps the node from starting: the queue
// opens with its tasks, or, when the damage is found, with the store moved aside (kept for
// inspection) and an empty queue.
func TestDamagedStoreIsMovedAsideNotFatal(t *testing.T) {
	src := filepath.Join(t.TempDir(), "tasks")
	blocked := &order{block: make(chan struct{})}
	q, err := Open(src, blocked.run, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		if _, err := q.Submit(strings.Repeat("prompt ", 20)+string(rune('a'+i%26)), "m", Standard, 8); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := os.ReadDir(src)
	damaged := 0
	for _, f := range files {
		info, _ := f.Info()
		if f.IsDir() || info.Size() < 16 {
			continue
		}
		t.Run(f.Name(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tasks")
			copyDir(t, src, dir)
			path := filepath.Join(dir, f.Name())
			b, _ := os.ReadFile(path)
			b[len(b)/2] ^= 0x5a
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			q, err := Open(dir, (&order{}).run, Options{Workers: 1})
			if err != nil {
				t.Fatalf("a flipped byte in %s stops the queue from opening: %v", f.Name(), err)
			}
			defer q.Close()
			_, total, _ := q.List(Filter{Limit: 1000})
			aside, _ := filepath.Glob(dir + ".damaged-*")
			t.Logf("%s: %d of %d tasks, moved aside: %v", f.Name(), total, n, aside)
			if len(aside) > 0 {
				damaged++
			}
			if total != n && len(aside) == 0 {
				t.Fatalf("%d of %d tasks after damage to %s, and the store was not moved aside", total, n, f.Name())
			}
		})
	}
	if damaged == 0 {
		t.Fatal("no damage was found in any file: the test damaged nothing that matters")
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}
