package views

import (
	"fmt"
	"sort"
	"strconv"

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
