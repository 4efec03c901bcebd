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

// A checkpoint is backed when more than half of the span's other holders gossip its round and
// hash: the serving peer alone is not enough among several, non-holders count for nothing.
func TestBackedNeedsAQuorumOfHolders(t *testing.T) {
	good, evil := strings.Repeat("11", 32), strings.Repeat("22", 32)
	rep := func(round int64, hash string) Report { return Report{First: 0, Last: 3, Round: round, Hash: hash} }
	reports := map[string]Report{"a": rep(3, good), "b": rep(3, good), "c": rep(3, evil), "d": rep(2, evil),
		"x": rep(3, evil), "y": rep(3, evil), "w": {First: 0, Last: 2, Round: 3, Hash: good}}
	for _, tc := range []struct {
		holders []string
		hash    string
		votes   int
		ok      bool
	}{
		{[]string{"a", "b", "c"}, good, 2, true},
		{[]string{"a", "b", "c"}, evil, 1, false},      // the server alone among three
		{[]string{"a", "b", "c", "d"}, good, 2, false}, // two of four is no majority
		{[]string{"c"}, evil, 1, true},                 // the only other holder
		{[]string{"a", "x", "y"}, evil, 2, true},       // x and y hold the span here
		{[]string{"a"}, evil, 0, false},                // x and y are not holders: they count not
		{[]string{"w"}, good, 0, false},                // another span
		{nil, good, 0, false},                          // no holders
	} {
		votes, ok := Backed(reports, tc.holders, 0, 3, 3, tc.hash)
		if votes != tc.votes || ok != tc.ok {
			t.Errorf("holders %v, hash %.2s: %d votes %v, want %d %v", tc.holders, tc.hash, votes, ok, tc.votes, tc.ok)
		}
	}
}

// A checkpoint without a quorum is taken only from a replica never excluded and not
// contradicted by more holders than back it.
func TestVouch(t *testing.T) {
	good, evil := strings.Repeat("11", 32), strings.Repeat("22", 32)
	rep := func(round int64, hash string) Report { return Report{First: 0, Last: 3, Round: round, Hash: hash} }
	reports := map[string]Report{"a": rep(3, good), "b": rep(3, good), "c": rep(3, evil), "d": rep(4, evil)}
	liar := []Exclusion{{Round: 1, Peer: "c", Reason: "norm 2.79e+03 is over 10x the other contribution's (2.65)"}}
	for _, tc := range []struct {
		holders  []string
		hash     string
		server   string
		excluded []Exclusion
		ok       bool
	}{
		{[]string{"a", "b", "c"}, good, "a", liar, true},     // a quorum
		{[]string{"a", "b", "c"}, evil, "c", nil, false},     // two holders say otherwise
		{[]string{"a", "c"}, evil, "c", nil, true},           // a split, one each: it heals
		{[]string{"a", "c"}, evil, "c", liar, false},         // ... but not towards a replica excluded
		{[]string{"a", "c", "d"}, evil, "d", nil, true},      // round 3 not gossiped by d yet
		{[]string{"a", "b", "c", "d"}, good, "a", nil, true}, // 2 of 4, none against by more
	} {
		err := Vouch(reports, tc.holders, 0, 3, 3, tc.hash, tc.server, tc.excluded)
		if (err == nil) != tc.ok {
			t.Errorf("holders %v, %.2s from %s: %v, want ok %v", tc.holders, tc.hash, tc.server, err, tc.ok)
		}
	}
}

// Without a quorum, the newest uncontradicted lineage wins; a claim more holders contradict
// does not.
func TestNewestWithoutAQuorum(t *testing.T) {
	h1, h2, h3 := strings.Repeat("11", 32), strings.Repeat("22", 32), strings.Repeat("33", 32)
	rep := func(round int64, hash string) Report { return Report{First: 0, Last: 3, Round: round, Hash: hash} }
	reports := map[string]Report{"a": rep(7, h1), "b": rep(4, h2), "c": rep(9, h3), "d": rep(9, h1), "e": rep(9, h1)}
	for _, tc := range []struct {
		holders []string
		mine    int64
		want    string
	}{
		{[]string{"a", "b"}, 3, "a"},           // two forks: the one further along
		{[]string{"a", "b"}, 7, ""},            // nothing past mine
		{[]string{"a", "c"}, 3, "c"},           // round 9, uncontradicted
		{[]string{"a", "c", "d", "e"}, 3, "d"}, // c's round 9 is contradicted by d and e
	} {
		got, ok := Newest(reports, tc.holders, 0, 3, tc.mine)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("holders %v at %d: %q %v, want %q", tc.holders, tc.mine, got, ok, tc.want)
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
