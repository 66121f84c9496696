package main

import (
	"testing"
	"time"
)

func TestFillEntries(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	const n, expired = 20_000, 2_000
	seq, plan := fillEntries(n, expired, "http://127.0.0.1:1", now)
	keys := map[string]bool{}
	var gotExpired, never, small int
	var bytes int64
	for e := range seq {
		if keys[e.Key] {
			t.Fatalf("key %q twice", e.Key)
		}
		keys[e.Key] = true
		if int64(len(e.Body)) != e.Size || e.BaseKey != e.Key || e.Upstream != "bench" {
			t.Fatalf("entry %+v: want Size = len(Body), BaseKey = Key, upstream bench", e)
		}
		if e.IsExpired(now) {
			gotExpired++
		}
		if e.Never() {
			never++
		}
		if !e.Never() && !e.Created.Before(e.Expires) {
			t.Fatalf("%s: created %v not before expires %v", e.URL, e.Created, e.Expires)
		}
		if e.Size < 768 {
			small++
		}
		bytes += e.Size
	}
	if got := len(keys); got != n || plan.count != n {
		t.Fatalf("%d entries, plan %d; want %d", got, plan.count, n)
	}
	if gotExpired != expired || plan.expired != expired {
		t.Fatalf("%d expired, plan %d; want %d", gotExpired, plan.expired, expired)
	}
	if plan.bytes != bytes || plan.never != never {
		t.Fatalf("plan %+v; counted %d bytes, %d never", plan, bytes, never)
	}
	if never < n/50 || never > n/20 || small < n*9/10 || plan.maxSize < 4096 {
		t.Fatalf("%d never expiring, %d under 768 bytes, largest %d: the spread is off", never, small, plan.maxSize)
	}
}
