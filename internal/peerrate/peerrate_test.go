package peerrate

import (
	"testing"

	"golang.org/x/time/rate"
)

// Each key has its own bucket; the map stays bounded.
func TestEachKeyHasItsOwnBucketAndTheMapIsBounded(t *testing.T) {
	l := New[int](rate.Limit(0), 2)
	for range 2 {
		if !l.Get(1).Allow() {
			t.Fatal("a burst of 2 refused")
		}
	}
	if l.Get(1).Allow() {
		t.Fatal("a third at no refill allowed")
	}
	if !l.Get(2).Allow() {
		t.Fatal("another key shares the first one's bucket")
	}
	for k := range 3 * MaxKeys {
		l.Get(k)
	}
	if n := len(l.by); n > MaxKeys {
		t.Fatalf("%d keys kept", n)
	}
}
