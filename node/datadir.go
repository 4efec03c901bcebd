package node

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/neuroshard/neuroshard/internal/atomicfile"
)

// Files in the data dir.
const (
	identityFile = "identity.key"
	tokenFile    = "token"
	settingsFile = "settings.json"
	ledgerDir    = "ledger" // the badger database of the NEURO ledger
)

// tokenPrefix marks tokens the node generated, so they are recognisable in a shell history.
const tokenPrefix = "nst_"

// loadToken returns the token to use and whether it was generated now. A token given on the
// command line wins; it is stored when the data dir has none, so later runs need no flag.
func loadToken(dir, given string) (token string, generated bool, err error) {
	path := filepath.Join(dir, tokenFile)
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
			logger().Warn("--token differs from the token stored in the data dir; using --token", "file", path)
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

// prepareDataDir creates the data dir (mode 0700) and checks it is writable.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("node: data dir: %w", err)
	}
	return checkWritable(dir)
}

func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".probe*")
	if err != nil {
		return fmt.Errorf("node: data dir %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
