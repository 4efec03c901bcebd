package diloco

import (
	"fmt"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/layers"
)

// Whose reports count: the node itself; on its trained span, the members of its rounds only;
// on other spans, holders it audited and the members their fresh reports name, holders still.
func TestCountingIsByRoundMembership(t *testing.T) {
	own, other := layers.Span{First: 0, Last: 3}, layers.Span{First: 4, Last: 7}
	holdings := map[string][]layers.Span{"me": {own}, "m1": {own}, "holder": {own}, "aud": {other}, "named": {other}, "unnamed": {other}, "stale": {other}}
	report := func(sp layers.Span, members ...string) Report {
		return Report{First: sp.First, Last: sp.Last, Members: members}
	}
	now := time.Now()
	reports := map[string]Seen{
		"aud":   {Report: report(other, "aud", "named", "ghost"), At: now},
		"stale": {Report: report(other, "unnamed"), At: now.Add(-time.Hour)},
	}
	fresh := func(s Seen) bool { return time.Since(s.At) < time.Minute }
	c := Counting{Self: "me", Own: own, Members: []string{"me", "m1"}, Holdings: holdings, Audited: map[string]int{"aud": 2, "stale": 5}}
	counts := c.Counts(reports, fresh)
	for _, tc := range []struct {
		peer string
		sp   layers.Span
		want bool
	}{
		{"me", own, true},
		{"m1", own, true},       // a member of the node's rounds
		{"holder", own, false},  // holds the span, no round used it
		{"aud", other, true},    // audited here, holds the span
		{"named", other, true},  // named a member by an audited holder
		{"ghost", other, false}, // named, but holds nothing
		{"unnamed", other, false},
		{"aud", own, false}, // reports on a span it does not hold
	} {
		if got := counts(tc.peer, report(tc.sp)); got != tc.want {
			t.Errorf("%s on %v: counts %v, want %v", tc.peer, tc.sp, got, tc.want)
		}
	}
	// A node that has taken no round trusts its own span like any other.
	c.Members = nil
	if c.Counts(reports, fresh)("m1", report(own)) {
		t.Error("with no rounds of its own the node counted an unaudited holder")
	}
}

func TestAgreementWeighsByStakeWhereThereIsStake(t *testing.T) {
	rep := func(round int64, hash string) Report { return Report{Round: round, Hash: hash} }
	none := func(string) float64 { return 0 }
	// No stake: each report counts once, the newest round only.
	rs := map[string]Report{"a": rep(3, "h"), "b": rep(3, "h"), "c": rep(3, "x"), "old": rep(2, "y")}
	if share, at, agreeing := Agreement(rs, none); share != 2.0/3 || at != 3 || agreeing != 2 {
		t.Fatalf("unweighted: %v %d %d", share, at, agreeing)
	}
	// 100 sybils without stake name another hash: two staked replicas decide.
	rs = map[string]Report{"a": rep(3, "h"), "b": rep(3, "h")}
	for i := range 100 {
		rs[fmt.Sprintf("sybil%d", i)] = rep(3, "x")
	}
	stake := func(p string) float64 {
		if p == "a" || p == "b" {
			return 50
		}
		return 0
	}
	if share, at, agreeing := Agreement(rs, stake); share != 1 || at != 102 || agreeing != 2 {
		t.Fatalf("sybils against stake: %v %d %d", share, at, agreeing)
	}
	// Without any stake they would win by numbers: there it is Counting's membership rule
	// that keeps them out before Agreement sees them.
	if share, _, agreeing := Agreement(rs, none); share != 100.0/102 || agreeing != 100 {
		t.Fatalf("unweighted sybils: %v %d", share, agreeing)
	}
	// Stake splits: the larger stake's hash is the agreement, its share by stake.
	rs = map[string]Report{"a": rep(3, "h"), "b": rep(3, "x"), "c": rep(3, "x")}
	w := map[string]float64{"a": 300, "b": 50, "c": 50}
	if share, _, agreeing := Agreement(rs, func(p string) float64 { return w[p] }); share != 0.75 || agreeing != 1 {
		t.Fatalf("by stake: %v %d", share, agreeing)
	}
	if share, at, _ := Agreement(nil, none); share != 0 || at != 0 {
		t.Fatalf("no reports: %v %d", share, at)
	}
}
