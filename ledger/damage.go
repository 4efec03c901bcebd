package ledger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
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

// checkFiles looks at a ledger directory before badger opens it: the MANIFEST must be readable
// and name every table file present.
func checkFiles(dir string, o badger.Options) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger: read %s: %w", dir, err)
	}
	var tables []uint64
	for _, e := range entries {
		name := e.Name()
		if id, ok := strings.CutSuffix(name, ".sst"); ok {
			if n, err := strconv.ParseUint(id, 10, 64); err == nil {
				tables = append(tables, n)
			}
		}
	}
	if len(tables) == 0 {
		return nil
	}
	path := filepath.Join(dir, badger.ManifestFilename)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %d table files but no readable %s (%v); %s", ErrDamaged, len(tables), path, err, wayOut(dir))
	}
	defer f.Close()
	mf, _, err := badger.ReplayManifestFile(f, o.ExternalMagicVersion, o)
	if err != nil {
		return fmt.Errorf("%w: %s: %v; %s", ErrDamaged, path, err, wayOut(dir))
	}
	var lost []string
	slices.Sort(tables)
	for _, id := range tables {
		if _, ok := mf.Tables[id]; !ok {
			lost = append(lost, fmt.Sprintf("%06d.sst", id))
		}
	}
	if len(lost) > 0 {
		return fmt.Errorf("%w: %s does not name %d of the %d table files (%s); opening would delete them; %s",
			ErrDamaged, path, len(lost), len(tables), strings.Join(lost, ", "), wayOut(dir))
	}
	for id, tm := range mf.Tables {
		if err := verifyTable(table.NewFilename(id, dir), tm.Compression, o); err != nil {
			return fmt.Errorf("%w: %v; %s", ErrDamaged, err, wayOut(dir))
		}
	}
	return nil
}

// verifyTable checks every block checksum of one table file. badger itself skips a table
// whose checksum fails (its transactions would be gone without a word) and panics on some
// damage inside a goroutine of its own, where nothing can recover; here both are an error.
func verifyTable(path string, c options.CompressionType, o badger.Options) (err error) {
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil && !errors.Is(err, z.NewFile) {
		return fmt.Errorf("table %s: %v", path, err)
	}
	defer func() {
		if r := recover(); r != nil {
			mf.Close(-1)
			err = fmt.Errorf("table %s is damaged: %v", path, r)
		}
	}()
	t, err := table.OpenTable(mf, table.Options{ReadOnly: true, ChkMode: options.OnTableRead, Compression: c,
		BlockSize: o.BlockSize, TableSize: uint64(o.BaseTableSize), BloomFalsePositive: o.BloomFalsePositive})
	if err != nil {
		return fmt.Errorf("table %s is damaged: %v", path, err)
	}
	return t.Close(-1)
}

// openBadger opens the database, turning a panic inside badger (it panics on some damaged
// tables) into ErrDamaged.
func openBadger(dir string, o badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %s: %v; %s", ErrDamaged, dir, r, wayOut(dir))
		}
	}()
	return badger.Open(o)
}

func hasMarker(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, markerFile))
	return err == nil
}

func writeMarker(dir, network string) error {
	return os.WriteFile(filepath.Join(dir, markerFile), []byte(network+"\n"), 0o600)
}
