package ledger

import (
	"encoding/binary"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/neuroshard/neuroshard/internal/par"
)

// benchWriters is how many goroutines submit at once, as concurrent API requests would.
const benchWriters = 32

// BenchmarkDurableTransactions compares sends through the ledger (validate, apply, index,
// fsync) with raw synced badger writes of the same size from the same number of writers.
// Reported: tx/s of each and their ratio.
func BenchmarkDurableTransactions(b *testing.B) {
	b.ReportAllocs()
	alice, bob := wallet(b, "alice"), wallet(b, "bob")
	p := fundedParams(1_000_000, alice)
	const n = 2000
	txSize := len(signed(alice, 1, time.Now(), send(p, bob, 1)).Encode())

	ledgerRate := func() float64 {
		l, err := Open(b.TempDir(), p, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		start := time.Now()
		par.Do(n, benchWriters, func(int) {
			if r := l.Submit(alice, send(p, bob, 1)); r.Err != nil {
				b.Error(r.Err)
			}
		})
		return n / time.Since(start).Seconds()
	}
	rawRate := func() float64 {
		db, err := badger.Open(badger.DefaultOptions(b.TempDir()).WithSyncWrites(true).WithLogger(nil))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		val := make([]byte, txSize)
		start := time.Now()
		par.Do(n, benchWriters, func(i int) {
			if err := db.Update(func(txn *badger.Txn) error {
				return txn.Set(binary.BigEndian.AppendUint64([]byte("k/"), uint64(i)), val)
			}); err != nil {
				b.Error(err)
			}
		})
		return n / time.Since(start).Seconds()
	}
	var lr, rr float64
	for range b.N {
		lr, rr = ledgerRate(), rawRate()
	}
	b.ReportMetric(lr, "ledger_tx/s")
	b.ReportMetric(rr, "raw_writes/s")
	b.ReportMetric(lr/rr, "ratio")
}

// BenchmarkCatchUp10k measures a ledger 10,000 transactions behind replaying another's log in
// pages, against the source's own time to apply them (the ratio is catch-up cost over live cost).
func BenchmarkCatchUp10k(b *testing.B) {
	b.ReportAllocs()
	ws := []*Wallet{wallet(b, "a"), wallet(b, "b"), wallet(b, "c"), wallet(b, "d")}
	p := fundedParams(1_000_000, ws...)
	const n = 10_000
	var live, catch time.Duration
	for range b.N {
		src, err := Open(b.TempDir(), p, Options{})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		par.Do(n, benchWriters, func(i int) {
			w := ws[i%len(ws)]
			if r := src.Submit(w, send(p, ws[(i+1)%len(ws)], 1)); r.Err != nil {
				b.Error(r.Err)
			}
		})
		live = time.Since(start)
		dst, err := Open(b.TempDir(), p, Options{})
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		var cursor uint64
		for {
			page, err := src.Since(cursor, 512, 1<<20)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			txs := make([]*Tx, len(page))
			for i, raw := range page {
				if txs[i], err = DecodeTx(raw); err != nil {
					b.Fatal(err)
				}
			}
			for _, r := range dst.ApplyAll(txs) {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
			cursor += uint64(len(page))
		}
		catch = time.Since(start)
		if _, _, seq := dst.Supply(); seq != n {
			b.Fatalf("caught up %d of %d", seq, n)
		}
		src.Close()
		dst.Close()
	}
	b.ReportMetric(catch.Seconds(), "catchup_s")
	b.ReportMetric(live.Seconds(), "live_s")
	b.ReportMetric(catch.Seconds()/live.Seconds(), "ratio")
}
