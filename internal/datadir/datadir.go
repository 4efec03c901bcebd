package datadir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/neuroshard/neuroshard/internal/atomicfile"
)

// TokenFile is where the data dir keeps the API token.
const TokenFile = "token"

// tokenPrefix marks tokens the node generated, so they are recognisable in a shell history.
const tokenPrefix = "nst_"

// LoadToken returns the token to use and whether it was generated now. A token given on the
// command line wins; it is stored when the data dir has none, so later runs need no flag.
func LoadToken(dir, given string) (token string, generated bool, err error) {
	path := filepath.Join(dir, TokenFile)
	raw, err := os.ReadFile(path)
	stored := strings.TrimSpace(string(raw))
	switch {
	case err == nil && stored == "":
		return "", false, fmt.Errorf("node: token file %s is empty; remove it or pass --token", path)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("node: read token: %w", err)
	}
	if given != "" {
		if stored == "" {
			if err := atomicfile.Write(path, []byte(given+"\n"), 0o600); err != nil {
				return "", false, fmt.Errorf("node: store token: %w", err)
			}
		} else if stored != given {
			slog.Default().With("pkg", "node").Warn("--token differs from the token stored in the data dir; using --token", "file", path)
		}
		return given, false, nil
	}
	if stored != "" {
		return stored, false, nil
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", false, fmt.Errorf("node: generate token: %w", err)
	}
	token = tokenPrefix + hex.EncodeToString(buf)
	if err := atomicfile.Write(path, []byte(token+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("node: store token: %w", err)
	}
	return token, true, nil
}

// Prepare creates the data dir (mode 0700) and checks it is writable.
func Prepare(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("node: data dir: %w", err)
	}
	return CheckWritable(dir)
}

// CheckWritable creates and removes a file in dir.
func CheckWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".probe*")
	if err != nil {
		return fmt.Errorf("node: data dir %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// Writes tracks the writes a node depends on (its checkpoints): a failure is logged once and
// kept until a later write succeeds, so the node's health check can show it.
type Writes struct{ failure atomic.Pointer[error] }

// Record records whether a write of what succeeded.
func (w *Writes) Record(what string, err error) {
	log := slog.Default().With("pkg", "node")
	if err == nil {
		if w.failure.Swap(nil) != nil {
			log.Info("storage writable again", "what", what)
		}
		return
	}
	err = fmt.Errorf("node: could not save the %s: %w", what, err)
	if w.failure.Swap(&err) == nil {
		log.Error("storage failing (health degraded until a write succeeds)", "what", what, "err", err)
	}
}

// Err is the last failed write, nil once one succeeds.
func (w *Writes) Err() error {
	if f := w.failure.Load(); f != nil {
		return *f
	}
	return nil
}
