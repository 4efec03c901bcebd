package ledger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/neuroshard/neuroshard/internal/badgercheck"
)

// ErrDamaged is returned when the ledger's files on disk are damaged: opening them as they
// are would lose transactions (badger deletes table files its MANIFEST does not name) or
// start an empty ledger over existing data. The message names the file and the way out.
var ErrDamaged = errors.New("ledger: database damaged")

// markerFile records, beside badger's files, that this directory holds a ledger: a database
// that has it but no network record lost its contents and is not re-created silently.
const markerFile = "NEUROSHARD-LEDGER"

// wayOut is what an operator can do about a damaged ledger: every transaction is also held
// by the network, so a fresh directory catches up from peers.
func wayOut(dir string) string {
	return fmt.Sprintf("move %s aside (keep it for inspection) and restart: the node starts a new ledger and catches up from its peers", dir)
}

// checkFiles checks a ledger directory before badger opens it (badgercheck.Check).
func checkFiles(dir string, o badger.Options) error {
	if err := badgercheck.Check(dir, o); err != nil {
		if errors.Is(err, badgercheck.ErrDamaged) {
			return fmt.Errorf("%w: %v; %s", ErrDamaged, err, wayOut(dir))
		}
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// openBadger opens the database; a panic inside badger is ErrDamaged.
func openBadger(dir string, o badger.Options) (*badger.DB, error) {
	db, err := badgercheck.Open(o)
	if errors.Is(err, badgercheck.ErrDamaged) {
		return nil, fmt.Errorf("%w: %v; %s", ErrDamaged, err, wayOut(dir))
	}
	return db, err
}

func hasMarker(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, markerFile))
	return err == nil
}

func writeMarker(dir, network string) error {
	return os.WriteFile(filepath.Join(dir, markerFile), []byte(network+"\n"), 0o600)
}
