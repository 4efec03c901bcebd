package node

import (
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/internal/par"
	"github.com/neuroshard/neuroshard/ledger"
)

// BenchmarkLedgerCatchUp10k: a node joins a network whose ledger holds 10,000 transactions and
// replays them from a peer over /neuroshard/ledger/1.0.0 (paged, decoded, checked, applied
// durably). Baseline: the same 10,000 transactions applied on the first node as they were
// submitted (32 concurrent submitters, group commit).
func BenchmarkLedgerCatchUp10k(b *testing.B) {
	b.ReportAllocs()
	const n = 10_000
	var live, catchUp time.Duration
	for range b.N {
		cfgs := ledgerConfigs(b, 2, 1_000_000)
		cfgs[0].LedgerSyncInterval = time.Hour // only the join triggers the replay
		src := startNode(b, cfgs[0])
		to, _ := ledger.WalletFromToken("bench recipient")
		start := time.Now()
		par.Do(n, 32, func(int) {
			if r := src.Ledger().Submit(src.wallet, ledger.Tx{Type: ledger.TxSend, To: to.Address(), Amount: 1, Fee: 1}); r.Err != nil {
				b.Error(r.Err)
			}
		})
		live = time.Since(start)

		start = time.Now()
		cfgs[1].Bootstrap = src.Multiaddrs()
		dst := startNode(b, cfgs[1])
		for {
			if _, _, seq := dst.Ledger().Supply(); seq >= n {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		catchUp = time.Since(start)
		if _, err := dst.Ledger().Audit(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(catchUp.Seconds(), "catchup_s")
	b.ReportMetric(live.Seconds(), "live_apply_s")
	b.ReportMetric(catchUp.Seconds()/live.Seconds(), "ratio")
	b.ReportMetric(n/catchUp.Seconds(), "catchup_tx/s")
}
