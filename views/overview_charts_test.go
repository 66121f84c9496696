package views

import (
	"testing"
	"time"
)

func TestNiceMax(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, 1: 1, 1.2: 1.5, 2.5: 3, 4: 5, 6: 7.5, 8: 10, 140: 150, 186: 200, 250: 300} {
		if got := niceMax(in); got != want {
			t.Errorf("niceMax(%v) = %v, want %v", in, got, want)
		}
	}
}

// The stacked areas end at the right edge for now and reach the peak; the
// top area is drawn first. overview.js draws the same strings.
func TestStackPaths(t *testing.T) {
	now := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	pts := []ChartPoint{
		{Time: now.Add(-time.Second), Hits: 1, Misses: 1},
		{Time: now, Hits: 2},
	}
	got := stackPaths(pts, now)
	if got[len(got)-1].Class != "s-hit" || got[0].Class != "s-error" {
		t.Fatalf("order %v", got)
	}
	// Peak 2: the hits area is 80 then 0 (the top); the misses area adds
	// a miss in the first second.
	if want := "M899,160L899,80L900,0L900,160Z"; got[len(got)-1].D != want {
		t.Errorf("hits area %q, want %q", got[len(got)-1].D, want)
	}
	if want := "M899,160L899,0L900,0L900,160Z"; got[2].D != want || got[2].Class != "s-miss" {
		t.Errorf("misses area %q (%s), want %q", got[2].D, got[2].Class, want)
	}
	if d := ratioPath([]ChartPoint{{Time: now, HasRatio: true, HitRatio: 0.5}, {Time: now.Add(time.Second)}}, now); d != "M900,30" {
		t.Errorf("ratio path %q: a second with nothing cacheable breaks the line", d)
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0.0 ms", 400 * time.Microsecond: "400 µs", 30 * time.Microsecond: "30 µs", 200: "1 µs", 1500 * time.Microsecond: "1.5 ms", 120 * time.Millisecond: "120 ms",
		12300 * time.Millisecond: "12.3 s", 5*time.Minute + 3*time.Second: "5 min 3 s", 2*time.Hour + 5*time.Minute: "2 h 5 min",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
	}
}
