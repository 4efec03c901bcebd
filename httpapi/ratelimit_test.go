package httpapi

import (
	"testing"
	"time"
)

func TestLimiterBudgetAndRefill(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(map[Class]int{ClassWallet: 10})
	l.now = func() time.Time { return now }
	for i := 0; i < 10; i++ {
		if ok, _ := l.take(ClassWallet, "a"); !ok {
			t.Fatalf("request %d of 10 refused", i+1)
		}
	}
	ok, wait := l.take(ClassWallet, "a")
	if ok || wait <= 0 || wait > 6*time.Second {
		t.Fatalf("11th request: ok=%v wait=%v (want refused, about 6s)", ok, wait)
	}
	if ok, _ := l.take(ClassWallet, "b"); !ok {
		t.Fatal("another client shares the first one's bucket")
	}
	if ok, _ := l.take(ClassInference, "a"); !ok {
		t.Fatal("a class without a budget must not be limited")
	}
	now = now.Add(6 * time.Second) // one token back at 10/min
	if ok, _ := l.take(ClassWallet, "a"); !ok {
		t.Fatal("no refill after 6s")
	}
	if ok, _ := l.take(ClassWallet, "a"); ok {
		t.Fatal("refilled more than one token in 6s")
	}
	now = now.Add(2 * time.Minute)
	l.take(ClassWallet, "c") // sweeps idle buckets
	if _, kept := l.buckets[string(ClassWallet)+"|b"]; kept {
		t.Fatal("idle bucket not swept")
	}
}
