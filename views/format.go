package views

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/dustin/go-humanize"
)

// Bytes formats a byte count in binary units: "0 B", "1.5 KiB", "3.2 MiB".
func Bytes(n int64) string {
	if n < 0 {
		n = 0
	}
	return humanize.IBytes(uint64(n))
}

// Count formats an integer with thousands separators: "1,234,567".
func Count(n int64) string { return humanize.Comma(n) }

// Percent formats a ratio in [0, 1] as a percentage with one decimal.
func Percent(r float64) string {
	if r != r { // NaN: nothing counted yet
		r = 0
	}
	return strconv.FormatFloat(r*100, 'f', 1, 64) + " %"
}

// ratioWidth is the width of a ratio bar's fill, as a CSS length.
func ratioWidth(r float64) string {
	if r != r || r < 0 {
		r = 0
	}
	if r > 1 {
		r = 1
	}
	return fmt.Sprintf("width:%.1f%%", r*100)
}

// plural returns "1 entry" / "2 entries" style phrases.
func plural(n int64, one, many string) string {
	if n == 1 {
		return Count(n) + " " + one
	}
	return Count(n) + " " + many
}

// sortedKeys returns the keys of q in order.
func sortedKeys(q map[string][]string) []string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Ago says how long before now t was, in the largest unit that fits:
// "just now", "45 s ago", "5 min ago", "3 h ago", "2 d ago". A zero t is
// "never".
func Ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + span(-d)
	}
	if d < time.Second {
		return "just now"
	}
	return span(d) + " ago"
}

// Expiry says when an entry expires relative to now: "never" (zero t),
// "in 5 min", or "expired 2 h ago".
func Expiry(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	if d := t.Sub(now); d > 0 {
		return "in " + span(d)
	}
	return "expired " + span(now.Sub(t)) + " ago"
}

// span is a duration in its largest whole unit, rounded down: "45 s",
// "5 min", "3 h", "2 d".
func span(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + " d"
}

// UTC formats t for a page: "2026-12-03 08:10:04 UTC"; app.js turns
// <time data-local> into the reader's zone.
func UTC(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}
