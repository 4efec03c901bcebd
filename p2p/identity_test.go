package p2p

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// An identity is kept across loads; one whose private half was damaged (its peer ID, from the
// public half, is unchanged) is refused with the file and the way out, and so is a truncated
// one.
func TestIdentityDamageIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	k, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateIdentity(path)
	if err != nil || !again.Equals(k) {
		t.Fatalf("reload: %v", err)
	}
	raw, _ := os.ReadFile(path)
	id, _ := peer.IDFromPrivateKey(k)

	seed := append([]byte{}, raw...)
	seed[len(seed)-64+5] ^= 0x10 // ed25519: seed, then the public half
	if dk, err := crypto.UnmarshalPrivateKey(seed); err != nil {
		t.Fatal(err)
	} else if did, _ := peer.IDFromPrivateKey(dk); did != id {
		t.Fatal("the damage changed the peer ID; the case tests nothing")
	}
	for name, b := range map[string][]byte{"private half": seed, "truncated": raw[:len(raw)-10]} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateIdentity(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "remove") {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
