package ledger

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrAddress is returned for a malformed address.
var ErrAddress = errors.New("ledger: bad address")

// AddressLen is the length of an address in bytes: the first 20 bytes of SHA-256(public key).
const AddressLen = 20

// Address identifies an account: "0x" + hex of the first 20 bytes of SHA-256 of its ed25519
// public key.
type Address [AddressLen]byte

// AddressOf returns the address of a public key.
func AddressOf(pub ed25519.PublicKey) Address {
	sum := sha256.Sum256(pub)
	var a Address
	copy(a[:], sum[:AddressLen])
	return a
}

// String formats the address as 0x-prefixed lower-case hex.
func (a Address) String() string { return "0x" + hex.EncodeToString(a[:]) }

// ParseAddress reads a 0x-prefixed hex address (either case).
func ParseAddress(s string) (Address, error) {
	var a Address
	h, ok := strings.CutPrefix(s, "0x")
	if !ok || len(h) != 2*AddressLen {
		return a, fmt.Errorf("%w: %q (want 0x and %d hex digits)", ErrAddress, s, 2*AddressLen)
	}
	if _, err := hex.Decode(a[:], []byte(h)); err != nil {
		return a, fmt.Errorf("%w: %q: %v", ErrAddress, s, err)
	}
	return a, nil
}

// MarshalText writes the 0x form, so addresses are strings in JSON.
func (a Address) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads the 0x form.
func (a *Address) UnmarshalText(b []byte) error {
	v, err := ParseAddress(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// walletKeyDomain separates the wallet key from any other use of the token's bytes.
const walletKeyDomain = "neuroshard wallet key v1\x00"

// Wallet is an account's signing key.
type Wallet struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	addr Address
}

// WalletFromToken derives the wallet key from the node's wallet token: the ed25519 seed is
// SHA-256 of a domain tag and the token, so the same token gives the same address on every
// machine, and the token itself never appears on the network.
func WalletFromToken(token string) (*Wallet, error) {
	if token == "" {
		return nil, errors.New("ledger: empty wallet token")
	}
	seed := sha256.Sum256([]byte(walletKeyDomain + token))
	priv := ed25519.NewKeyFromSeed(seed[:])
	pub := priv.Public().(ed25519.PublicKey)
	return &Wallet{priv: priv, pub: pub, addr: AddressOf(pub)}, nil
}

// Address is the wallet's account address.
func (w *Wallet) Address() Address { return w.addr }

// PublicKey is the wallet's ed25519 public key.
func (w *Wallet) PublicKey() ed25519.PublicKey { return w.pub }

// Sign signs a message with the wallet key.
func (w *Wallet) Sign(msg []byte) []byte { return ed25519.Sign(w.priv, msg) }
