package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// The end-to-end tests run the real binary as separate processes on loopback.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "neuroshard-e2e-*")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "neuroshard")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// syncBuffer collects a process's output for the failure message.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when the process has exited; err is then set
	err  error
	api  string
}

// freeAPIPort finds a port p such that p and p+1000 are both free on 127.0.0.1.
// given are the ports freeAPIPort handed out: tests that run in parallel never get one
// another's (a port is free again between the check and the node's listen).
var (
	givenMu sync.Mutex
	given   = map[int]bool{}
)

func freeAPIPort(t testing.TB) int {
	t.Helper()
	givenMu.Lock()
	defer givenMu.Unlock()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p+1000 > 65535 || given[p] || given[p+1000] {
			continue
		}
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1000))
		if err != nil {
			continue
		}
		l2.Close()
		given[p], given[p+1000] = true, true
		return p
	}
	t.Fatal("no free port pair")
	return 0
}

// startNode runs `neuroshard` on loopback with the given data dir and extra flags, and waits
// until its API answers.
func startNode(t testing.TB, dataDir string, port int, args ...string) *proc {
	t.Helper()
	return startNodeUnder(t, nil, dataDir, port, args...)
}

// startNodeUnder is startNode with the binary run under a command (taskset -c 0: pinned).
func startNodeUnder(t testing.TB, under []string, dataDir string, port int, args ...string) *proc {
	t.Helper()
	all := append([]string{"--host", "127.0.0.1", "--port", fmt.Sprint(port), "--data-dir", dataDir, "--log-level", "debug", "--train=false", "--bench=false"}, args...)
	argv := append(append(slices.Clone(under), binary(t)), all...)
	cmd := exec.Command(argv[0], argv[1:]...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, out: out, done: make(chan struct{}), api: fmt.Sprintf("http://127.0.0.1:%d", port)}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() || os.Getenv("NEUROSHARD_E2E_LOGS") != "" {
			t.Logf("output of neuroshard %s:\n%s", strings.Join(all, " "), out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.api + "/api/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("node exited early: %v\n%s", p.err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node API not up after 30s\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readToken(t *testing.T, dataDir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

// runCLI runs a client subcommand of the binary and returns its stdout.
func runCLI(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("neuroshard %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func TestEndToEndThreeProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	ports := []int{freeAPIPort(t), 0, 0}

	a := startNode(t, dirs[0], ports[0], "--layers", "0-2")
	tokA := readToken(t, dirs[0])
	stA, err := client.New(a.api, tokA).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(a.out.String(), tokA) {
		t.Fatal("the generated token was not printed")
	}
	var tcpAddr string
	for _, m := range stA.Multiaddrs {
		if strings.Contains(m, "/tcp/") {
			tcpAddr = m
		}
	}
	if tcpAddr == "" || !strings.HasSuffix(tcpAddr, "/p2p/"+stA.NodeID) {
		t.Fatalf("status multiaddrs: %v", stA.Multiaddrs)
	}
	ports[1] = freeAPIPort(t)
	b := startNode(t, dirs[1], ports[1], "--layers", "3-5", "--bootstrap", tcpAddr)
	ports[2] = freeAPIPort(t)
	c := startNode(t, dirs[2], ports[2], "--layers", "6-7", "--bootstrap", tcpAddr, "--token", "third-token")
	cc := client.New(c.api, "third-token")
	stB, err := client.New(b.api, readToken(t, dirs[1])).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// /peers on the third lists both others.
	deadline := time.Now().Add(20 * time.Second)
	for {
		peers, err := cc.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, p := range peers.Peers {
			ids[p.ID] = true
		}
		if ids[stA.NodeID] && ids[stB.NodeID] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/peers on the third node: %+v", peers)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// `neuroshard dht providers 0` lists the right holder, through the API and directly.
	var pr apitypes.Providers
	out := runCLI(t, "dht", "providers", "0", "--api", c.api, "--token", "third-token", "--json")
	if err := json.Unmarshal([]byte(out), &pr); err != nil {
		t.Fatalf("providers JSON: %v\n%s", err, out)
	}
	if len(pr.Providers) != 1 || pr.Providers[0].ID != stA.NodeID {
		t.Fatalf("providers of layer 0 via the API: %+v", pr)
	}
	out = runCLI(t, "dht", "providers", "4", "--bootstrap", tcpAddr, "--json")
	pr = apitypes.Providers{}
	if err := json.Unmarshal([]byte(out), &pr); err != nil {
		t.Fatalf("providers JSON: %v\n%s", err, out)
	}
	if len(pr.Providers) != 1 || pr.Providers[0].ID != stB.NodeID {
		t.Fatalf("providers of layer 4 via a DHT probe: %+v", pr)
	}
	table := runCLI(t, "dht", "coverage", "--api", c.api, "--token", "third-token")
	if !strings.Contains(table, "Every layer is held") {
		t.Fatalf("coverage table:\n%s", table)
	}
	if out := runCLI(t, "status", "--api", b.api, "--data-dir", dirs[1]); !strings.Contains(out, stB.NodeID) || !strings.Contains(out, "3-5") {
		t.Fatalf("status output:\n%s", out)
	}

	// Unauthenticated calls get 401 UNAUTHORIZED in the seed's format.
	resp, err := http.Get(c.api + "/api/v1/peers")
	if err != nil {
		t.Fatal(err)
	}
	var eb struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || eb.Error.Code != "UNAUTHORIZED" {
		t.Fatalf("unauthenticated: %d %+v", resp.StatusCode, eb)
	}

	// A malformed PATCH /config gets 400 INVALID_REQUEST and changes nothing.
	before, err := cc.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = cc.Do(ctx, http.MethodPatch, "/api/v1/config", strings.NewReader(`{"training": {"batch_size": 16, "learning_rate": "fast"}}`), nil)
	if !client.IsCode(err, "INVALID_REQUEST") {
		t.Fatalf("malformed patch: %v", err)
	}
	after, _ := cc.Config(ctx)
	if before.Training != after.Training {
		t.Fatalf("malformed patch changed config: %+v -> %+v", before.Training, after.Training)
	}

	// kill -9 the second node and restart it: same peer ID, same token.
	tokB := readToken(t, dirs[1])
	b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.done
	// Its layers leave the others' coverage within 30 s though its provider records live on,
	// and `neuroshard dht coverage` names them.
	killed := time.Now()
	for {
		cov, err := cc.Coverage(ctx)
		if err == nil && !cov.Complete && slices.Equal(cov.Missing, []int{3, 4, 5}) {
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("30 s after its holder died, the coverage still has layers 3-5: %+v %v", cov, err)
		}
		time.Sleep(time.Second) // within the API's rate limit
	}
	if table := runCLI(t, "dht", "coverage", "--api", c.api, "--token", "third-token"); !strings.Contains(table, "Layers nobody holds: [3 4 5]") {
		t.Fatalf("coverage table with a holder dead:\n%s", table)
	}
	t.Logf("a killed holder left the coverage in %v", time.Since(killed).Round(100*time.Millisecond))
	b2 := startNode(t, dirs[1], ports[1], "--bootstrap", tcpAddr)
	stB2, err := client.New(b2.api, tokB).Status(ctx)
	if err != nil {
		t.Fatalf("restarted node refuses the old token: %v", err)
	}
	if stB2.NodeID != stB.NodeID {
		t.Fatalf("peer ID changed across restart: %s -> %s", stB.NodeID, stB2.NodeID)
	}
	if strings.Contains(b2.out.String(), "Generated a new") {
		t.Fatal("restart generated a new token")
	}

	// Ctrl-C shuts down cleanly.
	c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.done:
		if c.err != nil {
			t.Fatalf("exit after SIGINT: %v\n%s", c.err, c.out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("node did not stop within 20s of SIGINT")
	}
}

func TestCLIRejectsBadFlags(t *testing.T) {
	bin := binary(t)
	for _, args := range [][]string{
		{"--layers", "9-3", "--data-dir", t.TempDir()},
		{"--max-memory", "lots", "--data-dir", t.TempDir()},
		{"--diloco-outer-momentum", "1", "--data-dir", t.TempDir()},
		{"--diloco-outer-lr", "-1", "--data-dir", t.TempDir()},
		{"--bootstrap", "/ip4/127.0.0.1/tcp/1", "--data-dir", t.TempDir()},
		{"frobnicate"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err == nil {
			t.Fatalf("neuroshard %v succeeded:\n%s", args, out)
		}
		if !strings.Contains(string(out), "neuroshard:") {
			t.Fatalf("neuroshard %v: no error message:\n%s", args, out)
		}
	}
}

// `neuroshard bench --json` prints the documented object.
func TestBenchCommand(t *testing.T) {
	out := runCLI(t, "bench", "--preset", "neuroshard-tiny", "--short", "--json")
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"forward_tokens_per_s", "train_tokens_per_s", "decode_tokens_per_s", "decode_batch8_tokens_per_s", "prefill_tokens_per_s"} {
		if v, _ := r[k].(float64); v <= 0 {
			t.Errorf("%s = %v in %s", k, r[k], out)
		}
	}
	if r["preset"] != "neuroshard-tiny" || r["backend"] != "cpu" {
		t.Errorf("preset/backend: %s", out)
	}
	if !strings.Contains(runCLI(t, "bench", "--preset", "neuroshard-tiny", "--short"), "decode, batch 8") {
		t.Error("table lacks the batch-8 row")
	}
}
