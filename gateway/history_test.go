package gateway

import (
	"math"
	"net/http"
	"testing"
	"time"
	"unsafe"
)

var t0 = time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)

// The ring holds HistoryLen samples however long it runs, oldest first,
// each with the counts of its own second.
func TestHistoryIsBounded(t *testing.T) {
	s := newStats(func() time.Time { return t0 }, "a")
	c := s.Upstream("a")
	for i := range HistoryLen + 50 {
		c.Requests.Add(int64(i))
		s.Tick(t0.Add(time.Duration(i+1) * time.Second))
	}
	h := s.History()
	if len(h) != HistoryLen {
		t.Fatalf("%d samples, want %d", len(h), HistoryLen)
	}
	if first := h[0]; !first.Time.Equal(t0.Add(51*time.Second)) || first.Total.Requests != 50 || first.Upstreams["a"].Requests != 50 {
		t.Fatalf("oldest sample %v with %d requests, want %v with 50", first.Time, first.Total.Requests, t0.Add(51*time.Second))
	}
	last := h[len(h)-1]
	if last.Total.Requests != HistoryLen+49 {
		t.Fatalf("newest sample has %d requests", last.Total.Requests)
	}
	got, seq := s.Since(uint64(HistoryLen + 48))
	if seq != HistoryLen+50 || len(got) != 2 || got[1].Time != last.Time {
		t.Fatalf("since: %d samples, seq %d", len(got), seq)
	}
	if got, _ := s.Since(0); len(got) != HistoryLen {
		t.Fatalf("since 0 gives %d samples, want the whole history", len(got))
	}
	if got, _ := s.Since(seq); len(got) != 0 {
		t.Fatalf("since the latest gives %d samples", len(got))
	}
}

// The last minute's hit ratio counts only the last minute; the counters
// count since start.
func TestHistoryWindows(t *testing.T) {
	now := t0
	s := newStats(func() time.Time { return now }, "a", "b")
	a, b := s.Upstream("a"), s.Upstream("b")
	// Ten minutes of misses only, then a minute of hits only.
	for i := range 600 {
		a.ended(http.MethodGet, Miss, false, 0)
		now = t0.Add(time.Duration(i+1) * time.Second)
		s.Tick(now)
	}
	for i := range 60 {
		a.ended(http.MethodGet, Hit, false, 0)
		a.ended(http.MethodGet, Hit, false, 0)
		b.ended(http.MethodGet, Hit, false, 0)
		now = t0.Add(time.Duration(601+i) * time.Second)
		s.Tick(now)
	}
	w := s.Window(now, time.Minute)
	if w.Seconds != 60 || w.Hits != 180 || w.Misses != 0 || w.HitRatio != 1 {
		t.Fatalf("last minute: %+v, want 60 s, 180 hits, ratio 1", w)
	}
	w5 := s.Window(now, 5*time.Minute)
	if w5.Seconds != 300 || w5.Misses != 240 || math.Abs(w5.HitRatio-180.0/420) > 1e-9 {
		t.Fatalf("last 5 minutes: %+v", w5)
	}
	if total := s.Snapshot().Total; total.Hits != 180 || total.Misses != 600 || math.Abs(total.HitRatio-180.0/780) > 1e-9 {
		t.Fatalf("since start: %+v", total)
	}
	// A window longer than the history covers what it holds.
	if all := s.Window(now, time.Hour); all.Seconds != 660 {
		t.Fatalf("an hour's window summed %d samples, want 660", all.Seconds)
	}
}

// Each sample's percentiles are those of its own second's answers.
func TestHistoryLatencyPercentiles(t *testing.T) {
	s := newStats(func() time.Time { return t0 }, "a")
	c := s.Upstream("a")
	// A hit is timed as it is counted, and counted as an outcome as it
	// ends, as the doors do.
	hit := func(took time.Duration) {
		c.countHit(0, took, "r")
		c.ended(http.MethodGet, Hit, false, 0)
	}
	for range 99 {
		hit(time.Millisecond)
	}
	hit(100 * time.Millisecond)
	for range 10 {
		c.missLatency.observe(50 * time.Millisecond)
	}
	p := s.Tick(t0.Add(time.Second)).Total
	near := func(got, want float64) bool { return got >= want*0.8 && got <= want*1.25 }
	if !near(p.HitP50Ms, 1) || !near(p.HitP99Ms, 1) || !near(p.MissP50Ms, 50) || !near(p.MissP99Ms, 50) {
		t.Fatalf("second 1: %+v", p)
	}
	for range 10 {
		hit(100 * time.Millisecond)
	}
	p = s.Tick(t0.Add(2 * time.Second)).Total
	if !near(p.HitP50Ms, 100) || p.MissP50Ms != 0 || p.Hits != 10 {
		t.Fatalf("second 2 forgets second 1: %+v", p)
	}
	if got := s.Rules("a"); len(got) != 1 || got[0].Hits != 110 {
		t.Fatalf("rules %+v", got)
	}
}

func TestBucketsCoverTheirValues(t *testing.T) {
	for _, us := range []int64{0, 1, 7, 8, 9, 15, 16, 100, 1000, 12345, 1e6, 5e7} {
		d := time.Duration(us) * time.Microsecond
		mid := bucketMid(bucketOf(d))
		if us >= 8 && (mid < float64(us)*0.85 || mid > float64(us)*1.15) {
			t.Errorf("%d µs falls in a bucket centred on %.1f", us, mid)
		}
		if us < 8 && mid != float64(us) {
			t.Errorf("%d µs: bucket %.1f", us, mid)
		}
	}
	if bucketOf(1000*time.Hour) != histBuckets-1 {
		t.Error("a huge latency does not land in the last bucket")
	}
}

// The rule counts stay bounded whatever the reasons.
func TestRuleCountsAreBounded(t *testing.T) {
	var rc ruleCounts
	for i := range 500 {
		rc.hitReason(time.Duration(i).String())
	}
	if got := rc.list(); len(got) > maxRules+1 {
		t.Fatalf("%d rules kept", len(got))
	}
}

// The README's memory bound is computed from pointSize.
func TestPointSizeIsWhatTheBoundSays(t *testing.T) {
	if got := unsafe.Sizeof(Point{}); got != pointSize {
		t.Fatalf("a Point is %d bytes; update pointSize and the README's bound", got)
	}
}

// A hit counts under its reason's rule whether the reason is remembered
// or parsed again past maxReasons.
func TestHitsCountUnderTheirReasonsRule(t *testing.T) {
	var rc ruleCounts
	for i := range maxReasons + 10 {
		rc.hitReason("the upstream's Cache-Control: max-age=" + string(rune('0'+i%10)) + time.Duration(i).String() + " gives 1s")
	}
	rc.hitReason("expire_after gives 1h0m0s")
	rc.hitReason("expire_after gives 1h0m0s")
	got := map[string]int64{}
	for _, r := range rc.list() {
		got[r.Rule] = r.Hits
	}
	if got["Cache-Control: max-age"] != maxReasons+10 || got["expire_after"] != 2 || len(got) != 2 {
		t.Fatalf("hits per rule %v", got)
	}
}
