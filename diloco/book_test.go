package diloco

import (
	"strings"
	"testing"
	"time"
)

// A newer round moves a replica only when more than half of the span's other holders report
// it with one hash; reports of non-holders count for nothing.
func TestNewerRoundNeedsAQuorumOfHolders(t *testing.T) {
	h1, h2 := strings.Repeat("11", 32), strings.Repeat("22", 32)
	rep := func(round int64, hash string) Report { return Report{First: 0, Last: 3, Round: round, Hash: hash} }
	reports := map[string]Report{"a": rep(5, h1), "b": rep(5, h1), "c": rep(9, h2), "x": rep(1000, h2), "y": rep(1000, h2)}
	for _, tc := range []struct {
		holders []string
		mine    int64
		round   int64
		ok      bool
	}{
		{[]string{"a", "b", "c"}, 3, 5, true},  // two of three agree on round 5
		{[]string{"a", "c"}, 3, 0, false},      // one each: no majority
		{[]string{"c"}, 3, 9, true},            // the only other holder
		{[]string{"a", "b", "c"}, 5, 0, false}, // round 5 is not newer; round 9 has one of three
		{[]string{"a", "b"}, 3, 5, true},       // x and y are not holders: their round 1000 counts not
		{nil, 3, 0, false},                     // no holders
	} {
		round, _, from, ok := NewerRound(reports, tc.holders, 0, 3, tc.mine)
		if ok != tc.ok || round != tc.round || (ok && len(from) == 0) {
			t.Errorf("holders %v at round %d: round %d from %v ok %v, want %d %v", tc.holders, tc.mine, round, from, ok, tc.round, tc.ok)
		}
	}
}

// Reports age out after the TTL; this node's losses are kept in order.
func TestReportBook(t *testing.T) {
	b := ReportBook{TTL: time.Minute}
	b.Put("a", Report{Round: 1}, time.Now().Add(-2*time.Minute))
	b.Put("b", Report{Round: 2}, time.Now())
	b.PutMine("me", Report{Round: 3, Loss: 2.5}, time.Now())
	b.PutMine("me", Report{Round: 4, Loss: 2.4}, time.Now())
	if _, ok := b.Latest("a"); ok {
		t.Fatal("a stale report counts")
	}
	if r, ok := b.Latest("b"); !ok || r.Round != 2 {
		t.Fatalf("b: %+v %v", r, ok)
	}
	if f := b.Fresh(); len(f) != 2 || f["me"].Round != 4 {
		t.Fatalf("fresh %v", f)
	}
	if l := b.MyLosses(); len(l) != 2 || l[0] != 2.5 || l[1] != 2.4 {
		t.Fatalf("losses %v", l)
	}
}

// Replicas that gossip different rounds last still agree when their recent reports share a
// round and hash.
func TestMostAgreeingOverRecentRounds(t *testing.T) {
	var b ReportBook
	h := func(i int) string { return strings.Repeat(string(rune('a'+i)), 64) }
	for r := int64(30); r <= 41; r++ {
		b.Put("a", Report{First: 0, Last: 3, Round: r, Hash: h(int(r % 7))}, time.Now())
	}
	b.Put("b", Report{First: 0, Last: 3, Round: 39, Hash: h(39 % 7)}, time.Now())
	b.Put("c", Report{First: 0, Last: 3, Round: 39, Hash: h(1)}, time.Now()) // another hash
	if got := len(b.History("a")); got != reportHistory {
		t.Fatalf("history of %d rounds", got)
	}
	hist := map[string][]Report{"a": b.History("a"), "b": b.History("b"), "c": b.History("c")}
	if got := MostAgreeing(hist); got != 2 {
		t.Fatalf("most agreeing %d, want 2 (a and b at round 39)", got)
	}
	delete(hist, "b")
	if got := MostAgreeing(hist); got != 1 {
		t.Fatalf("most agreeing %d without b, want 1", got)
	}
}
