package backoff

import (
	"testing"
	"time"
)

func TestWaitDoublesAndResets(t *testing.T) {
	var b Keys[string]
	if !b.Ready("a") {
		t.Fatal("a new key waits")
	}
	b.Failed("a")
	if b.Ready("a") || !b.Ready("b") {
		t.Fatal("a failed key is ready, or another key waits")
	}
	b.Failed("a")
	if w := b.wait["a"]; w != 2*time.Second {
		t.Fatalf("second failure waits %v, want 2s", w)
	}
	for range 10 {
		b.Failed("a")
	}
	if w := b.wait["a"]; w != 2*time.Minute {
		t.Fatalf("wait %v, want the 2 min bound", w)
	}
	b.Succeeded("a")
	if !b.Ready("a") {
		t.Fatal("a success did not reset the key")
	}
}
