package main

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
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

// A refused token is explained with where a token comes from; other errors are left alone.
func TestRefusedTokenIsExplained(t *testing.T) {
	refused := &client.APIError{Status: 401, Code: apitypes.CodeUnauthorized, Message: "missing or invalid token"}
	if msg := explain(refused).Error(); !strings.Contains(msg, "--token") || !strings.Contains(msg, "NEUROSHARD_TOKEN") || !strings.Contains(msg, "invalid token") {
		t.Fatalf("explained as %q", msg)
	}
	other := errors.New("connection refused")
	if explain(other) != other {
		t.Fatal("another error was rewritten")
	}
}
