package main

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/node"
	"github.com/urfave/cli/v2"
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

// --audit takes sampled, full or off; anything else is refused before a node starts.
func TestAuditModeFlag(t *testing.T) {
	err := newApp().Run([]string{"neuroshard", "--data-dir", t.TempDir(), "--audit", "always"})
	if err == nil || !strings.Contains(err.Error(), "want sampled, full or off") {
		t.Fatalf("--audit always: %v", err)
	}
	var got node.Config
	app := newApp()
	app.Action = func(c *cli.Context) error {
		var err error
		got, err = configFromFlags(c)
		return err
	}
	if err := app.Run([]string{"neuroshard", "--data-dir", t.TempDir(), "--audit", "full"}); err != nil || !got.AuditFull {
		t.Fatalf("--audit full: %+v %v", got.AuditFull, err)
	}
	if err := app.Run([]string{"neuroshard", "--data-dir", t.TempDir(), "--audit", "off"}); err != nil || got.AuditFull || got.AuditRate >= 0 {
		t.Fatalf("--audit off: full %v rate %v %v", got.AuditFull, got.AuditRate, err)
	}
}
