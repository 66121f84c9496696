package main

import (
	"fmt"
	"iter"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
)

const (
	// hotCount is how many URLs the million-entry hits go to: the gateway
	// stores them itself (one miss each), the rest of the entries are
	// loaded into its SQLite file beforehand.
	hotCount = 1000
	// hotBody is the size of every hot URL's body.
	hotBody = 1 << 10
	// listPages is the page of the listing whose latency is measured (and
	// listPageSize its size), so a cache needs at least
	// listPages*listPageSize entries.
	listPages, listPageSize = 1000, 50
	// minEntries is the smallest -entries: the 1,000th page must exist.
	minEntries = 60_000
)

// hotPath is the upstream path of hot URL i; the upstream ignores the query,
// the gateway keys on it.
func hotPath(i int) string { return fmt.Sprintf("/bytes/1k?hot=%d", i) }

// fillPlan describes the entries fillEntries made, so the runner can check
// what the gateway reports against it. It is complete once the sequence has
// been read to its end.
type fillPlan struct {
	count   int   // entries made
	expired int   // of which expired at now
	never   int   // of which never expire
	bytes   int64 // body bytes
	maxSize int
}

// fillEntries returns count synthetic entries of the upstream "bench" at
// upstreamBase, as the gateway would have stored them for URLs like
// /bytes/N?item=I, and their plan. The entries are a fixed
// function of their index and now, spread the way a long-running cache's
// are:
//   - sizes: 95% 32..767 bytes, 4.9% 768 B..4 KiB, 0.1% 4..64 KiB;
//   - exactly `expired` of them expired up to 29 days before now, scattered
//     over the index range (and so over rowids and the file), the rest
//     expiring within 30 days except 3% that never expire;
//   - created over the last 30 days; a quarter of them hit up to 500 times.
//
// Their keys are made with cache.MakeKey from the index, not by the
// gateway's key function: requesting one of these URLs through the gateway
// is a miss that stores a second entry. Hits go to the hot URLs instead.
// The sequence yields them in key order, which Load takes fastest. All
// entries share one header map and one body array: the iterator allocates
// little, and Load copies what it stores.
func fillEntries(count, expired int, upstreamBase string, now time.Time) (iter.Seq[*cache.Entry], *fillPlan) {
	const maxSize = 4096 + 61440
	pad := make([]byte, maxSize)
	for i := range pad {
		pad[i] = 'a' + byte(i%26)
	}
	header := http.Header{
		"Cache-Control": {"public, max-age=3600"},
		"Content-Type":  {"application/octet-stream"},
	}
	reqHeader := http.Header{}
	// stride scatters the expired entries: i*stride mod count is a
	// permutation of the indexes when the two are coprime.
	stride := 2_654_435_761 % count
	for gcd(stride, count) != 1 {
		stride++
	}
	const day = 24 * time.Hour

	entry := func(i int, key string) *cache.Entry {
		h := splitmix(uint64(i))
		var size int
		switch u := h % 1000; {
		case u < 950:
			size = 32 + int((h>>10)%736)
		case u < 999:
			size = 768 + int((h>>10)%3328)
		default:
			size = 4096 + int((h>>10)%61440)
		}
		h2 := splitmix(h)
		var created, expires time.Time
		switch {
		case (i*stride)%count < expired:
			expires = now.Add(-time.Minute - time.Duration(h2%uint64(29*day/time.Second))*time.Second)
			created = expires.Add(-time.Hour - time.Duration((h2>>32)%uint64(day/time.Second))*time.Second)
		case (h2>>40)%100 < 3:
			created = now.Add(-time.Duration(h2%uint64(30*day/time.Millisecond)) * time.Millisecond)
		default:
			created = now.Add(-time.Duration(h2%uint64(30*day/time.Millisecond)) * time.Millisecond)
			expires = now.Add(time.Hour + time.Duration((h2>>20)%uint64(30*day/time.Second))*time.Second)
		}
		e := &cache.Entry{
			Key:           key,
			Upstream:      "bench",
			Method:        http.MethodGet,
			URL:           upstreamBase + "/bytes/" + strconv.Itoa(size) + "?item=" + strconv.Itoa(i),
			RequestHeader: reqHeader,
			Status:        http.StatusOK,
			Header:        header,
			Body:          pad[:size],
			Size:          int64(size),
			ContentType:   "application/octet-stream",
			RequestTime:   created.Add(-2 * time.Millisecond),
			Created:       created,
			Expires:       expires,
			Reason:        "Cache-Control: max-age=3600",
		}
		e.BaseKey = e.Key
		if (h2>>50)%4 == 0 {
			e.Hits = int64(1 + (h2>>52)%500)
			if last := created.Add(time.Duration(h2 % uint64(now.Sub(created)+1))); last.Before(now) {
				e.LastHit = last
			}
		}
		return e
	}

	// In key order, inserts into the key index append instead of landing
	// at random pages: Load runs about twice as fast. Rowids then follow
	// the keys, so expiries and sizes are still scattered over the file.
	keys := make([]string, count)
	order := make([]int32, count)
	for i := range count {
		keys[i] = filler(i)
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(keys[a], keys[b]) })

	plan := &fillPlan{expired: expired}
	seq := func(yield func(*cache.Entry) bool) {
		*plan = fillPlan{expired: expired}
		for _, i := range order {
			e := entry(int(i), keys[i])
			plan.count++
			plan.bytes += e.Size
			plan.maxSize = max(plan.maxSize, int(e.Size))
			if e.Never() {
				plan.never++
			}
			if !yield(e) {
				return
			}
		}
	}
	return seq, plan
}

// filler is the key of filler entry i.
func filler(i int) string { return cache.MakeKey("benchrun-filler", strconv.Itoa(i)) }

// splitmix is SplitMix64's output function: a cheap, well-mixed hash of i.
func splitmix(i uint64) uint64 {
	z := i + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
