package handlers

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestLimiterBounded: a flood of addresses never grows the map past its
// bound; once full, new addresses share one bucket, and expired windows
// make room again.
func TestLimiterBounded(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	l := newLimiter(func() time.Time { return now })
	l.max = 8
	for i := 0; i < 100; i++ {
		l.fail("192.0.2." + strconv.Itoa(i))
	}
	if n := len(l.m); n > l.max+1 {
		t.Fatalf("%d addresses kept, want at most %d and the shared bucket", n, l.max)
	}
	if l.allow("198.51.100.1") {
		t.Fatal("a new address is allowed while the shared bucket is over the limit")
	}
	if !l.allow("192.0.2.0") {
		t.Fatal("an address with one failure is refused")
	}
	now = now.Add(time.Minute)
	if !l.allow("198.51.100.1") {
		t.Fatal("a new address is refused after the window")
	}
	l.fail("198.51.100.1")
	if _, ok := l.m["198.51.100.1"]; !ok {
		t.Fatal("expired windows did not make room")
	}
}

// TestLimiterConcurrent: N goroutines failing for one address count every
// failure (run with -race).
func TestLimiterConcurrent(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	l := newLimiter(func() time.Time { return now })
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.allow("192.0.2.1")
			l.fail("192.0.2.1")
		}()
	}
	wg.Wait()
	if got := l.m["192.0.2.1"].n; got != 50 {
		t.Fatalf("%d failures counted, want 50", got)
	}
	if l.allow("192.0.2.1") {
		t.Fatal("allowed after 50 failures")
	}
}
