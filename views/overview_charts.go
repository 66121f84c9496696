package views

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// The overview's charts are SVG drawn here, so the page shows them with
// scripts off; static/js/overview.js redraws the same paths with the same
// geometry as samples arrive. Keep the two in step: the constants are
// also on each <svg> as data-* attributes, which the script reads.
const (
	// chartSeconds is the charted window; one unit of x per second.
	chartSeconds = 900
	chartHeight  = 160
	ratioHeight  = 60
	sparkHeight  = 24
	// The latency chart is logarithmic from 0.01 ms to 10 s.
	latMinLog, latMaxLog = -2.0, 4.0
)

// series is one drawn line or area.
type series struct {
	Name, Class, D string
}

// stackOrder is the order outcomes are stacked in, bottom first: what the
// cache answered, then what went upstream.
var stackOrder = []struct{ name, class string }{
	{"Hits", "s-hit"}, {"Stale", "s-stale"}, {"Revalidated", "s-reval"},
	{"Misses", "s-miss"}, {"Bypassed", "s-bypass"}, {"Errors", "s-error"},
}

func stackValues(p ChartPoint) [6]float64 {
	return [6]float64{float64(p.Hits), float64(p.Stale), float64(p.Revalidated), float64(p.Misses), float64(p.Bypass), float64(p.Errors)}
}

// xOf places t in the window that ends at now.
func xOf(t, now time.Time) float64 {
	return chartSeconds - now.Sub(t).Seconds()
}

func num(f float64) string { return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64) }

// niceMax rounds the peak up to 1, 1.5, 2, 3, 5 or 7.5 times a power of
// ten, so the axis label is a round number and the chart fills most of
// its height.
func niceMax(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.5, 2, 3, 5, 7.5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// stackPeak is the highest second's total.
func stackPeak(pts []ChartPoint) float64 {
	peak := 0.0
	for _, p := range pts {
		s := 0.0
		for _, v := range stackValues(p) {
			s += v
		}
		peak = max(peak, s)
	}
	return niceMax(peak)
}

// stackPaths are the stacked areas, top series first so that each lower
// one paints over the part of the one above it that it covers.
func stackPaths(pts []ChartPoint, now time.Time) []series {
	top := stackPeak(pts)
	out := make([]series, len(stackOrder))
	for k := range stackOrder {
		var b strings.Builder
		for i, p := range pts {
			v := stackValues(p)
			cum := 0.0
			for j := 0; j <= k; j++ {
				cum += v[j]
			}
			x, y := num(xOf(p.Time, now)), num(chartHeight-cum/top*chartHeight)
			if i == 0 {
				b.WriteString("M" + x + "," + num(chartHeight) + "L" + x + "," + y)
			} else {
				b.WriteString("L" + x + "," + y)
			}
			if i == len(pts)-1 {
				b.WriteString("L" + x + "," + num(chartHeight) + "Z")
			}
		}
		out[len(stackOrder)-1-k] = series{Name: stackOrder[k].name, Class: stackOrder[k].class, D: b.String()}
	}
	return out
}

// linePath draws value(p) where ok(p), breaking the line where not.
func linePath(pts []ChartPoint, now time.Time, y func(ChartPoint) (float64, bool)) string {
	var b strings.Builder
	pen := false
	for _, p := range pts {
		v, ok := y(p)
		if !ok {
			pen = false
			continue
		}
		if pen {
			b.WriteString("L")
		} else {
			b.WriteString("M")
		}
		b.WriteString(num(xOf(p.Time, now)) + "," + num(v))
		pen = true
	}
	return b.String()
}

func ratioPath(pts []ChartPoint, now time.Time) string {
	return linePath(pts, now, func(p ChartPoint) (float64, bool) {
		return ratioHeight - p.HitRatio*ratioHeight, p.HasRatio
	})
}

// latY places a latency on the logarithmic axis.
func latY(ms float64) float64 {
	l := math.Log10(ms)
	l = min(max(l, latMinLog), latMaxLog)
	return chartHeight - (l-latMinLog)/(latMaxLog-latMinLog)*chartHeight
}

func latencyPaths(pts []ChartPoint, now time.Time) []series {
	line := func(get func(ChartPoint) float64) string {
		return linePath(pts, now, func(p ChartPoint) (float64, bool) {
			v := get(p)
			return latY(v), v > 0
		})
	}
	return []series{
		{"Miss p99", "l-miss99", line(func(p ChartPoint) float64 { return p.MissP99Ms })},
		{"Miss p50", "l-miss50", line(func(p ChartPoint) float64 { return p.MissP50Ms })},
		{"Hit p99", "l-hit99", line(func(p ChartPoint) float64 { return p.HitP99Ms })},
		{"Hit p50", "l-hit50", line(func(p ChartPoint) float64 { return p.HitP50Ms })},
	}
}

// latTicks are the gridlines of the latency axis, one per decade.
var latTicks = []struct {
	Label string
	Y     float64
}{
	{"10 s", latY(10000)}, {"1 s", latY(1000)}, {"100 ms", latY(100)}, {"10 ms", latY(10)}, {"1 ms", latY(1)}, {"0.1 ms", latY(0.1)},
}

// sparkPath draws the last values, one unit a second, ending at the
// right edge.
func sparkPath(vals []float64) string {
	peak := 0.0
	for _, v := range vals {
		peak = max(peak, v)
	}
	peak = niceMax(peak)
	var b strings.Builder
	for i, v := range vals {
		if i == 0 {
			b.WriteString("M")
		} else {
			b.WriteString("L")
		}
		b.WriteString(num(float64(chartSeconds-len(vals)+1+i)) + "," + num(sparkHeight-v/peak*sparkHeight))
	}
	return b.String()
}

// bucketPeak is the largest bucket, at least 1.
func bucketPeak(bs []Bucket) int64 {
	var m int64 = 1
	for _, b := range bs {
		m = max(m, b.Count)
	}
	return m
}

// barWidth is a histogram bar's length as a CSS width.
func barWidth(n, peak int64) string {
	return ratioWidth(float64(n) / float64(peak))
}

// Duration formats a time span for a tile: "0.4 ms", "120 ms", "12.3 s",
// "5 min 3 s", "2 h 5 min".
func Duration(d time.Duration) string {
	switch {
	case d > 0 && d < time.Millisecond:
		return strconv.FormatInt(int64(max(1, (d+500)/time.Microsecond)), 10) + " µs"
	case d < 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + " ms"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min " + strconv.Itoa(int(d%time.Minute/time.Second)) + " s"
	}
	return strconv.Itoa(int(d/time.Hour)) + " h " + strconv.Itoa(int(d%time.Hour/time.Minute)) + " min"
}

// Rate formats requests per second.
func Rate(r float64) string {
	if r < 10 && r != math.Trunc(r) {
		return strconv.FormatFloat(r, 'f', 1, 64) + "/s"
	}
	return Count(int64(math.Round(r))) + "/s"
}
