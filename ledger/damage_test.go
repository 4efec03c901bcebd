package ledger

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// filledLedger makes a closed ledger in a fresh dir holding n sends.
func filledLedger(t *testing.T, n int) (dir string, p Params) {
	t.Helper()
	alice, bob := wallet(t, "alice"), wallet(t, "bob")
	p = fundedParams(1000, alice)
	dir = t.TempDir()
	l, err := Open(dir, p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if r := l.Submit(alice, send(p, bob, 1)); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if _, _, seq := l.Supply(); seq != uint64(n) {
		t.Fatalf("seq %d, want %d", seq, n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, p
}

func tableFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A MANIFEST cut short used to open as an empty ledger (badger deletes the table files it does
// not name): now it is refused, nothing is deleted, and the repaired file opens everything.
func TestTruncatedManifestIsRefusedNotEmptied(t *testing.T) {
	dir, p := filledLedger(t, 22)
	tables := tableFiles(t, dir)
	if len(tables) == 0 {
		t.Fatal("closing the ledger left no table files; the test needs them")
	}
	path := filepath.Join(dir, "MANIFEST")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, orig[:10], 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, p, Options{})
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("open with a truncated MANIFEST: %v, want ErrDamaged", err)
	}
	t.Log(err)
	if got := tableFiles(t, dir); len(got) != len(tables) {
		t.Fatalf("%d table files left of %d", len(got), len(tables))
	}
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	l := openLedger(t, dir, p)
	if _, _, seq := l.Supply(); seq != 22 {
		t.Fatalf("after repair: %d transactions, want 22", seq)
	}
}

// A directory that held a ledger and lost every badger file is not re-created as a fresh one.
func TestLostContentsAreNotRecreatedSilently(t *testing.T) {
	dir, p := filledLedger(t, 3)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != markerFile {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	if _, err := Open(dir, p, Options{}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("open of an emptied ledger dir: %v, want ErrDamaged", err)
	}
	// A new directory still starts a new ledger.
	l := openLedger(t, t.TempDir(), p)
	if _, _, seq := l.Supply(); seq != 0 {
		t.Fatal(seq)
	}
}

// Bytes flipped in a table file give an error at open (checksums are verified), never a panic
// or a ledger that silently lacks transactions.
func TestFlippedTableBytesAreAnError(t *testing.T) {
	dir, p := filledLedger(t, 22)
	tables := tableFiles(t, dir)
	if len(tables) == 0 {
		t.Skip("no table files")
	}
	b, err := os.ReadFile(tables[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := len(b) / 4; i < len(b)/2; i += 7 {
		b[i] ^= 0x5a
	}
	if err := os.WriteFile(tables[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		l, err := Open(dir, p, Options{})
		if err == nil {
			_, err = l.Audit()
			l.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a damaged table opened and audited clean")
		}
		t.Log(err)
	case <-time.After(30 * time.Second):
		t.Fatal("open of a damaged ledger hung")
	}
}
