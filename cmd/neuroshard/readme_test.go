package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README's examples, run as written against the built binary: shell blocks in bash and
// the Python block in python3, in a sandbox where HOME is a temp dir (so ~/.neuroshard is the
// node's default data dir) and /tmp/ paths move under the sandbox. Placeholders become the
// run's real values (a peer ID for 12D3KooW..., the task just created for task_..., the token
// for YOUR_TOKEN and nst_..., a wallet address for 0x1f2e...). A line that starts a node runs
// it in the background until its API answers. Every block is either run or named in
// readmeSkipped with the reason, so an example added later cannot go untested.

// readmeBlock is one fenced block of the README.
type readmeBlock struct {
	lang, text string
	line       int
}

func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []readmeBlock
	var cur *readmeBlock
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```") && cur == nil:
			cur = &readmeBlock{lang: strings.TrimPrefix(line, "```"), line: n}
		case strings.HasPrefix(line, "```"):
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	return out
}

// readmeSkipped names the blocks (by a line they contain) that are not run, and why.
var readmeSkipped = map[string]string{
	"--relay --host 0.0.0.0":             "a public relay and a node behind a NAT at 203.0.113.7: the tests never dial outside loopback (TestNodeBehindANAT* run it on 127.0.0.1)",
	"neuroshard bench ":                  "full benchmarks of the small and base presets take minutes (TestBenchCommand runs the short form)",
	"make build        # bin/neuroshard": "the development targets: make test is what runs this test",
	`{"genesis":`:                        "a network file, used by the wallet block's node below",
}

// readmeScript turns a block into a bash script: continuation lines joined, node starts in
// the background, placeholders replaced.
func readmeScript(text string, subst ...string) string {
	text = strings.ReplaceAll(text, "\\\n", " ")
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(l)
		switch {
		case trimmed == "make test" || strings.HasPrefix(trimmed, "make test "):
			continue // this test is part of it
		case strings.HasPrefix(trimmed, "make run"):
			l = "start_node neuroshard"
		case trimmed == "neuroshard" || strings.HasPrefix(trimmed, "neuroshard --"):
			l = "start_node " + l
		}
		lines = append(lines, l)
	}
	s := strings.Join(lines, "\n")
	for i := 0; i+1 < len(subst); i += 2 { // in order: a later one may name what an earlier one wrote
		s = strings.ReplaceAll(s, subst[i], subst[i+1])
	}
	return s
}

const readmePrelude = `set -euo pipefail
start_node() {
  local port=8000 prev=""
  for a in "$@"; do if [ "$prev" = "--port" ]; then port=$a; fi; prev=$a; done
  "$@" >> "$SANDBOX/nodes.log" 2>&1 &
  echo $! >> "$SANDBOX/pids"
  for i in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "node on port $port never answered" >&2; return 1
}
status_of() { # node ID of the node with data dir $1 at API port $2
  curl -sf -H "Authorization: Bearer $(cat "$1/token")" "http://127.0.0.1:$2/api/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["node_id"])'
}
`

// runReadme runs a script in the sandbox and returns its output.
func runReadme(t *testing.T, sandbox, home, bindir, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lang, body := "bash", readmePrelude+script
	if strings.HasPrefix(script, "#python\n") {
		lang, body = "python3", strings.TrimPrefix(script, "#python\n")
	}
	cmd := exec.CommandContext(ctx, lang, "-c", body)
	cmd.Dir = "../.."
	// The sandbox's nodes neither train nor measure the machine (NEUROSHARD_TRAIN and
	// NEUROSHARD_BENCH, which the flags read): no example depends on it, and both would take
	// the cores from the tests running beside this one.
	cmd.Env = append(os.Environ(), "HOME="+home, "SANDBOX="+sandbox, "PATH="+bindir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"NEUROSHARD_TRAIN=false", "NEUROSHARD_BENCH=false")
	out, err := cmd.CombinedOutput()
	if err != nil {
		logs, _ := os.ReadFile(filepath.Join(sandbox, "nodes.log"))
		t.Fatalf("%s: %v\n--- script\n%s\n--- output\n%s\n--- nodes\n%s", lang, err, script, out, logs)
	}
	return string(out)
}

// running tells whether a process runs: not gone, and not a zombie (the scripts' nodes
// outlive their shell, and whoever inherits them may reap them only later).
func running(pid int) bool {
	if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// pid (comm) state ...: the state follows the last ')'.
		if i := strings.LastIndexByte(string(raw), ')'); i >= 0 && i+2 < len(raw) {
			return raw[i+2] != 'Z'
		}
	}
	return syscall.Kill(pid, 0) == nil
}

// stopNodes ends the nodes the scripts started.
func stopNodes(sandbox string) {
	raw, _ := os.ReadFile(filepath.Join(sandbox, "pids"))
	for _, f := range strings.Fields(string(raw)) {
		if pid, err := strconv.Atoi(f); err == nil {
			syscall.Kill(pid, syscall.SIGTERM)
			for i := 0; i < 100 && running(pid); i++ {
				time.Sleep(50 * time.Millisecond)
			}
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	os.Remove(filepath.Join(sandbox, "pids"))
}

func TestReadmeExamplesRun(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	for _, port := range []int{8000, 8001, 9000, 9001} { // the README's ports
		if !portFree(port) {
			t.Skipf("port %d is taken on this machine: the README's examples use it", port)
		}
	}
	sandbox := t.TempDir()
	bindir := filepath.Join(sandbox, "bin")
	if err := os.MkdirAll(filepath.Join(sandbox, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(bindir, 0o755)
	if err := os.Symlink(bin, filepath.Join(bindir, "neuroshard")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopNodes(sandbox) })
	home := filepath.Join(sandbox, "home")
	tmp := "$SANDBOX/tmp/"
	ran := map[int]bool{}
	find := func(marker string) readmeBlock {
		t.Helper()
		for _, b := range readmeBlocks(t) {
			if strings.Contains(b.text, marker) {
				ran[b.line] = true
				return b
			}
		}
		t.Fatalf("no README block holds %q", marker)
		return readmeBlock{}
	}
	want := func(out string, parts ...string) {
		t.Helper()
		for _, p := range parts {
			if !strings.Contains(out, p) {
				t.Fatalf("output lacks %q:\n%s", p, out)
			}
		}
	}

	// A network of two nodes.
	out := runReadme(t, sandbox, home, bindir, readmeScript(find("# first node: holds layers 0-3").text,
		"/tmp/", tmp, "12D3KooW...", `$(status_of $SANDBOX/tmp/a 8000)`))
	want(out, "12D3KooW")
	stopNodes(sandbox)

	// The standalone node of the set-up (with a second node joining it, so the DHT commands
	// have a peer to find), and the API and DHT examples against it.
	runReadme(t, sandbox, home, bindir, readmeScript(find("make run    # a standalone node").text))
	raw, err := os.ReadFile(filepath.Join(home, ".neuroshard", "token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(raw))
	self := `$(status_of $HOME/.neuroshard 8000)`
	runReadme(t, sandbox, home, bindir, "start_node neuroshard --port 8001 --data-dir $SANDBOX/tmp/c --train=false --bench=false --bootstrap /ip4/127.0.0.1/tcp/9000/p2p/"+self+"\n")
	out = runReadme(t, sandbox, home, bindir, readmeScript(find("neuroshard dht routing-table").text,
		"find-peer 12D3KooW...", "find-peer $(status_of $SANDBOX/tmp/c 8001)", "12D3KooW...", self))
	want(out, "12D3KooW")
	out = runReadme(t, sandbox, home, bindir, readmeScript(find(`"stream": true}'`).text))
	want(out, `"token"`, "[DONE]")
	out = runReadme(t, sandbox, home, bindir, readmeScript(find("curl -X POST http://127.0.0.1:8000/api/tasks").text,
		`-d '{"prompt": "ROMEO:", "priority": "high"}'`, `-d '{"prompt": "ROMEO:", "priority": "high"}' | tee $SANDBOX/task.json; echo`,
		"task_1795333698_93036af9", `$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["task_id"])' $SANDBOX/task.json)`))
	want(out, `"task_id"`, "chat.completion.chunk")
	out = runReadme(t, sandbox, home, bindir, "#python\n"+strings.ReplaceAll(find("from neuroshard import NeuroNode, NEUROLedger").text, "YOUR_TOKEN", token))
	want(out, "NEURO")
	stopNodes(sandbox)

	// The wallet, on a node of the README's local network (its file funds token "abc").
	net := find(`{"genesis":`).text
	if err := os.WriteFile(filepath.Join(sandbox, "net.json"), []byte(net), 0o644); err != nil {
		t.Fatal(err)
	}
	walletHome := filepath.Join(sandbox, "wallet-home")
	runReadme(t, sandbox, walletHome, bindir, "start_node neuroshard --token abc --network-config $SANDBOX/net.json --train=false --bench=false\n")
	out = runReadme(t, sandbox, walletHome, bindir, readmeScript(find("neuroshard wallet balance").text,
		"0x1f2e...", "$(neuroshard wallet address --token someone-else)", "nst_...", "abc"))
	want(out, "0x541911a23d0f09d20be2a6840479b1f9c6592237")
	stopNodes(sandbox)

	// Every block was run or has its reason not to be.
	for _, b := range readmeBlocks(t) {
		if ran[b.line] {
			continue
		}
		skipped := false
		for marker := range readmeSkipped {
			skipped = skipped || strings.Contains(b.text, marker)
		}
		if !skipped {
			t.Errorf("README block at line %d is neither run nor skipped with a reason:\n%s", b.line, b.text)
		}
	}
}

// portFree tells whether a TCP port on 127.0.0.1 can be listened on.
func portFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
