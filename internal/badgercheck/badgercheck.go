package badgercheck

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

// ErrDamaged is wrapped by every error about damaged files.
var ErrDamaged = errors.New("database damaged")

// Check looks at a badger directory before badger opens it: the MANIFEST must be readable and
// name every table file present, and every table's block checksums must hold. A damaged
// directory is an error wrapping ErrDamaged that names the file.
func Check(dir string, o badger.Options) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
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
		return fmt.Errorf("%w: %d table files but no readable %s (%v)", ErrDamaged, len(tables), path, err)
	}
	defer f.Close()
	mf, _, err := badger.ReplayManifestFile(f, o.ExternalMagicVersion, o)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	var lost []string
	slices.Sort(tables)
	for _, id := range tables {
		if _, ok := mf.Tables[id]; !ok {
			lost = append(lost, fmt.Sprintf("%06d.sst", id))
		}
	}
	if len(lost) > 0 {
		return fmt.Errorf("%w: %s does not name %d of the %d table files (%s); opening would delete them",
			ErrDamaged, path, len(lost), len(tables), strings.Join(lost, ", "))
	}
	for id, tm := range mf.Tables {
		if err := verifyTable(table.NewFilename(id, dir), tm.Compression, o); err != nil {
			return fmt.Errorf("%w: %v", ErrDamaged, err)
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

// Open opens the database, turning a panic inside badger (it panics on some damaged tables)
// into an error wrapping ErrDamaged.
func Open(o badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %s: %v", ErrDamaged, o.Dir, r)
		}
	}()
	return badger.Open(o)
}
