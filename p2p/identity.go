package p2p

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/neuroshard/neuroshard/internal/atomicfile"
)

// LoadOrCreateIdentity reads the node's private key from path, or creates an ed25519 key and
// stores it there (mode 0600) so the peer ID survives restarts. The file is written to a
// temporary name and renamed, so a crash never leaves a half-written key.
func LoadOrCreateIdentity(path string) (crypto.PrivKey, error) {
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := crypto.UnmarshalPrivateKey(raw)
		if err != nil {
			return nil, fmt.Errorf("p2p: identity %s is corrupt (remove it to make a new peer ID): %w", path, err)
		}
		if err := checkKeyPair(k); err != nil {
			return nil, fmt.Errorf("p2p: identity %s is damaged: %w (its peer ID cannot be kept; remove the file to make a new one)", path, err)
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("p2p: read identity: %w", err)
	}
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("p2p: generate identity: %w", err)
	}
	raw, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("p2p: marshal identity: %w", err)
	}
	if err := atomicfile.Write(path, raw, 0o600); err != nil {
		return nil, fmt.Errorf("p2p: store identity: %w", err)
	}
	return k, nil
}

// checkKeyPair signs with the private key and verifies with the public half it carries: an
// ed25519 key whose private half was damaged keeps its public half, so its peer ID, but
// every signature it makes fails, and the node would run cut off while looking healthy.
func checkKeyPair(k crypto.PrivKey) error {
	msg := []byte("neuroshard identity check")
	sig, err := k.Sign(msg)
	if err != nil {
		return fmt.Errorf("cannot sign: %w", err)
	}
	ok, err := k.GetPublic().Verify(msg, sig)
	if err != nil || !ok {
		return errors.New("its private half does not match its public half")
	}
	return nil
}

// RawKey is the raw ed25519 public key a peer ID carries: what the ledger binds stake to and
// what attestations and binds are checked against.
func RawKey(id peer.ID) ([]byte, error) {
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("p2p: no public key in %s: %w", id, err)
	}
	return pub.Raw()
}

// PeerOfRawKey is the peer ID of a raw ed25519 public key ("" if it is not one).
func PeerOfRawKey(raw []byte) peer.ID {
	pub, err := crypto.UnmarshalEd25519PublicKey(raw)
	if err != nil {
		return ""
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return ""
	}
	return id
}
