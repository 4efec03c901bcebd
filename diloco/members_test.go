package diloco

import (
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
