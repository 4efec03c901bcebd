package p2p

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
)

// newTestHost starts a real host on 127.0.0.1 with short intervals and closes it at cleanup.
func newTestHost(t testing.TB, opts ...Option) *Host {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	base := []Option{WithIntervals(time.Minute, 200*time.Millisecond, time.Second)}
	h, err := New(k, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return h
}

func addrInfo(h *Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.Libp2p().Addrs()} }

// newTestNetwork starts n hosts, the first alone and the others bootstrapping off it.
func newTestNetwork(t testing.TB, n int) []*Host {
	t.Helper()
	first := newTestHost(t)
	hosts := []*Host{first}
	for i := 1; i < n; i++ {
		hosts = append(hosts, newTestHost(t, WithBootstrap(addrInfo(first))))
	}
	return hosts
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEightNodesFillRoutingTablesAndFindProviders(t *testing.T) {
	hosts := newTestNetwork(t, 8)
	for _, h := range hosts {
		if h.Config().Profile != ProfileLocal {
			t.Fatalf("loopback host resolved profile %q, want local", h.Config().Profile)
		}
	}
	waitFor(t, 15*time.Second, "every routing table to hold the 7 others", func() bool {
		for _, h := range hosts {
			if len(h.RoutingTable()) != len(hosts)-1 {
				return false
			}
		}
		return true
	})
	for i, h := range hosts {
		rt := h.RoutingTable()
		for j, o := range hosts {
			if i != j && !slices.Contains(rt, o.ID()) {
				t.Fatalf("node %d's routing table lacks node %d", i, j)
			}
		}
	}
	// Each node provides one layer key; a fresh node then finds the provider of each.
	for i, h := range hosts {
		if err := h.Provide(context.Background(), fmt.Sprintf("test-model/%d", i)); err != nil {
			t.Fatalf("node %d provide: %v", i, err)
		}
	}
	fresh := newTestHost(t, WithBootstrap(addrInfo(hosts[3])), WithDHTMode(DHTModeClient))
	for i, h := range hosts {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		provs, err := fresh.FindProviders(ctx, fmt.Sprintf("test-model/%d", i), 0)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(provs) != 1 || provs[0].ID != h.ID() {
			t.Fatalf("providers of layer %d: got %v, want only %s", i, provs, h.ID())
		}
	}
	// A key nobody provides has no providers.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if provs, _ := fresh.FindProviders(ctx, "test-model/99", 0); len(provs) != 0 {
		t.Fatalf("providers of an unprovided key: %v", provs)
	}
}

func TestSetAnnouncedIsProvidedInBackground(t *testing.T) {
	hosts := newTestNetwork(t, 3)
	waitFor(t, 10*time.Second, "routing tables", func() bool { return len(hosts[2].RoutingTable()) == 2 })
	hosts[1].SetAnnounced([]string{"m/0", "m/1"})
	waitFor(t, 10*time.Second, "host 2 to find host 1 providing m/1", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		provs, _ := hosts[2].FindProviders(ctx, "m/1", 0)
		return len(provs) == 1 && provs[0].ID == hosts[1].ID()
	})
	// The node lists itself for its own keys without a network round trip.
	provs, err := hosts[1].FindProviders(context.Background(), "m/0", 1)
	if err != nil || len(provs) == 0 || provs[0].ID != hosts[1].ID() {
		t.Fatalf("self as provider: %v %v", provs, err)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A node whose bootstrap peer is down joins once it comes up: the bootstrap loop re-dials.
func TestRedialsBootstrapWhenRoutingTableEmpty(t *testing.T) {
	k, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	port := freePort(t)
	addrs, err := ListenAddrsFor("127.0.0.1", port)
	if err != nil {
		t.Fatal(err)
	}
	joiner := newTestHost(t, WithBootstrap(peer.AddrInfo{ID: id, Addrs: addrs[:1]}))
	if n := len(joiner.RoutingTable()); n != 0 {
		t.Fatalf("routing table before bootstrap peer exists: %d", n)
	}
	boot, err := New(k, WithListenAddrs(addrs...), WithIntervals(time.Minute, 200*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { boot.Close() })
	if err := boot.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "joiner to add the late bootstrap peer", func() bool {
		return slices.Contains(joiner.RoutingTable(), id)
	})
}

func TestConfigValidation(t *testing.T) {
	k, _, _ := crypto.GenerateEd25519Key(nil)
	for _, tc := range []struct {
		name string
		opt  Option
	}{
		{"bad mode", WithDHTMode("sometimes")},
		{"bad profile", WithProfile("moon")},
		{"no listen", WithListenAddrs()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(k, tc.opt); err == nil {
				t.Fatal("want an error")
			}
		})
	}
	if _, err := New(nil); err == nil {
		t.Fatal("nil key accepted")
	}
	if _, err := ListenAddrsFor("not-an-ip", 1); err == nil {
		t.Fatal("bad IP accepted")
	}
	if _, err := ParseBootstrap([]string{"/ip4/127.0.0.1/tcp/1"}); err == nil {
		t.Fatal("bootstrap without /p2p accepted")
	}
}

func TestAutoProfile(t *testing.T) {
	pub := ma.StringCast("/ip4/0.0.0.0/tcp/1")
	// Every interface and nobody to join: internet only on a machine with a public address
	// (else its DHT would be a client nobody on the LAN could join through).
	want := ProfileLocal
	if publicInterface() {
		want = ProfileInternet
	}
	if p := autoProfile([]ma.Multiaddr{pub}, nil); p != want {
		t.Fatalf("unspecified listen, no bootstrap: %s, want %s", p, want)
	}
	publicBoot := []peer.AddrInfo{{Addrs: []ma.Multiaddr{ma.StringCast("/ip4/1.2.3.4/tcp/1")}}}
	if p := autoProfile([]ma.Multiaddr{pub}, publicBoot); p != ProfileInternet {
		t.Fatalf("unspecified listen, public bootstrap: %s", p)
	}
	if p := autoProfile([]ma.Multiaddr{ma.StringCast("/ip4/192.168.1.4/tcp/1")}, nil); p != ProfileLocal {
		t.Fatalf("private listen: %s", p)
	}
	boot := []peer.AddrInfo{{Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1")}}}
	if p := autoProfile([]ma.Multiaddr{pub}, boot); p != ProfileLocal {
		t.Fatalf("loopback bootstrap: %s", p)
	}
}

func TestContentKeyIsStable(t *testing.T) {
	// CIDv1, raw codec (0x55), sha2-256: the same string gives the same key on every peer.
	c := ContentKey("neuroshard-small/0")
	if c.Version() != 1 || c.Type() != 0x55 || c.Prefix().MhType != 0x12 {
		t.Fatalf("unexpected CID prefix %+v", c.Prefix())
	}
	if c != ContentKey("neuroshard-small/0") || c == ContentKey("neuroshard-small/1") {
		t.Fatal("content key not a function of its input")
	}
}

func TestIdentityPersists(t *testing.T) {
	path := t.TempDir() + "/identity.key"
	k1, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Fatal("identity changed between loads")
	}
}

// A connection is not an answer: a peer still connected but no longer answering (a wedged
// process, or a machine gone while its connection waits out the transport's idle timeout) is
// not reachable; a peer that answers is.
func TestReachableAsksConnectedPeersForAPing(t *testing.T) {
	hosts := newTestNetwork(t, 2)
	a, b := hosts[0], hosts[1]
	waitFor(t, 10*time.Second, "a connection", func() bool { return a.Libp2p().Network().Connectedness(b.ID()) == network.Connected })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if !a.Reachable(ctx, addrInfo(b)) {
		t.Fatal("a connected peer that answers pings is not reachable")
	}
	// b goes silent: it takes ping streams and never answers (a machine gone, whose
	// connection waits out the transport's idle timeout, looks the same from a).
	b.Libp2p().SetStreamHandler(ping.ID, func(s network.Stream) { io.Copy(io.Discard, s); s.Reset() })
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	if a.Reachable(ctx2, peer.AddrInfo{ID: b.ID()}) {
		t.Fatal("a connected peer that never answers counted as reachable")
	}
	b.Libp2p().RemoveStreamHandler(ping.ID) // b refuses pings; the connection stays open
	ctx3, cancel3 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel3()
	if a.Libp2p().Network().Connectedness(b.ID()) != network.Connected {
		t.Fatal("the connection closed: the test would check a dial, not the ping")
	}
	if a.Reachable(ctx3, peer.AddrInfo{ID: b.ID()}) {
		t.Fatal("a connected peer that refuses the ping counted as reachable")
	}
}
