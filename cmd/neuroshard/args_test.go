package main

import (
	"slices"
	"testing"
)

func TestFlagsFirst(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"ns", "dht", "providers", "0", "--json", "--api", "http://x"}, []string{"ns", "dht", "providers", "--json", "--api", "http://x", "0"}},
		{[]string{"ns", "dht", "find-peer", "--token=t", "12D3", "--json"}, []string{"ns", "dht", "find-peer", "--token=t", "--json", "12D3"}},
		{[]string{"ns", "dht", "providers", "--", "-1"}, []string{"ns", "dht", "providers", "--", "-1"}},
		{[]string{"ns", "status", "x", "--json"}, []string{"ns", "status", "x", "--json"}},
		{[]string{"ns"}, []string{"ns"}},
	} {
		if got := flagsFirst(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("flagsFirst(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
