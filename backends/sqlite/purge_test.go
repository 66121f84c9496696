package sqlite

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/migrations"
)

// TestMeasurePurge measures DeleteExpired on a large cache while cache
// hits, hit counts and stores go on, plus the listings and hit counts that
// the purge's levers (batches, indexes) could slow down. It is not part of
// the default run: set CACHEGATE_BENCH_PURGE=1 (and optionally
// CACHEGATE_BENCH_PURGE_N, default 1000000 entries, a tenth of them
// expired; CACHEGATE_BENCH_PURGE_DIR to keep the loaded file and copy it
// for later runs instead of loading again; CACHEGATE_BENCH_PURGE_TEMPLATE
// to start from a copy of a given file, such as one kept by an older
// version, which Open then upgrades; CACHEGATE_BENCH_PURGE_CPUPROFILE to
// write a CPU profile of the purge alone).
//
//	CACHEGATE_BENCH_PURGE=1 go test -run MeasurePurge -v -timeout 1h ./backends/sqlite/
func TestMeasurePurge(t *testing.T) {
	if os.Getenv("CACHEGATE_BENCH_PURGE") == "" {
		t.Skip("set CACHEGATE_BENCH_PURGE=1 to measure a purge of a large cache")
	}
	n := 1_000_000
	if s := os.Getenv("CACHEGATE_BENCH_PURGE_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 60_000 {
			t.Fatalf("CACHEGATE_BENCH_PURGE_N = %q: want a number of entries, at least 60000", s)
		}
	}
	expired := n / 10
	ctx := context.Background()
	// A fixed now: a kept file has the same entries expired on every run.
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

	// A loaded file is kept under the names of its entry count and of the
	// last migration it was loaded with; a later run copies it, so that
	// the copy starts from the same schema and may upgrade it on Open.
	dir := os.Getenv("CACHEGATE_BENCH_PURGE_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	template := filepath.Join(dir, fmt.Sprintf("purge-%d-%s.db", n, lastMigration(t)))
	if s := os.Getenv("CACHEGATE_BENCH_PURGE_TEMPLATE"); s != "" {
		template = s // a file kept by an older version, to upgrade
	}
	if _, err := os.Stat(template); err != nil {
		b, err := Open("sqlite://" + template)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		seq, _ := purgeEntries(n, expired, now)
		if _, err := b.Load(ctx, seq); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("loaded %d entries in %v", n, time.Since(start).Round(time.Millisecond))
	}
	work := filepath.Join(t.TempDir(), "purge.db")
	copyFile(t, template, work)

	start := time.Now()
	b, err := Open("sqlite://" + work)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	t.Logf("opened (migrations included) in %v", time.Since(start).Round(time.Millisecond))
	if fi, err := os.Stat(work); err == nil {
		t.Logf("file: %d MiB", fi.Size()>>20)
	}

	// The entries are a fixed function of their index: keys and expiries
	// are known without reading the file. Hits and stores go to fresh
	// entries only, so every Get is a hit before, during and after.
	_, keys := purgeEntries(n, expired, now)
	var fresh []string
	for i, k := range keys {
		if !isExpired(i, n, expired) {
			fresh = append(fresh, k)
		}
	}

	listings(t, b, now)
	recordHitsCost(t, b, fresh)

	// Every transaction of the purge and of the sweep after it.
	var (
		holdsMu sync.Mutex // protects holds
		holds   = map[string][]time.Duration{}
	)
	onBatch := func(op string, held time.Duration) {
		holdsMu.Lock()
		holds[op] = append(holds[op], held)
		holdsMu.Unlock()
	}
	b.onBatch.Store(&onBatch)

	var (
		stop = make(chan struct{})
		wg   sync.WaitGroup
		mu   sync.Mutex // protects the slices below
		gets []time.Duration
		hits []time.Duration
		puts []time.Duration
	)
	// Four readers, each one Get a millisecond: hits at a steady rate,
	// not a closed loop that would take the purge's CPU.
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				t0 := time.Now()
				if _, ok, err := b.Get(ctx, fresh[rng.IntN(len(fresh))]); err != nil || !ok {
					t.Errorf("Get: %v, %v", ok, err)
					return
				}
				d := time.Since(t0)
				mu.Lock()
				gets = append(gets, d)
				mu.Unlock()
			}
		})
	}
	// The hot tier's background writers: hit counts of 100 entries and a
	// store, every 10 ms each. How long they wait shows how long the
	// purge holds the writer.
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(8, 9))
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			batch := make([]cache.Hit, 100)
			for i := range batch {
				batch[i] = cache.Hit{Key: fresh[rng.IntN(len(fresh))], Count: 1, Last: time.Now()}
			}
			t0 := time.Now()
			if err := b.RecordHits(ctx, batch); err != nil {
				t.Errorf("RecordHits: %v", err)
				return
			}
			d := time.Since(t0)
			mu.Lock()
			hits = append(hits, d)
			mu.Unlock()
		}
	})
	wg.Go(func() {
		body := make([]byte, 1024)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			e := &cache.Entry{Key: cache.MakeKey("purge-put", strconv.Itoa(i)), Upstream: "bench", Method: http.MethodGet,
				URL: "https://bench.example/put/" + strconv.Itoa(i), Status: http.StatusOK, Body: body,
				Created: time.Now(), Expires: time.Now().Add(time.Hour)}
			e.BaseKey = e.Key
			t0 := time.Now()
			if err := b.Put(ctx, e); err != nil {
				t.Errorf("Put: %v", err)
				return
			}
			d := time.Since(t0)
			mu.Lock()
			puts = append(puts, d)
			mu.Unlock()
		}
	})

	// A second of load alone, for comparison.
	time.Sleep(time.Second)
	phase := func() [3]latencies {
		mu.Lock()
		defer mu.Unlock()
		l := [3]latencies{summarizeLat(gets), summarizeLat(hits), summarizeLat(puts)}
		gets, hits, puts = nil, nil, nil
		return l
	}
	before := phase()

	if path := os.Getenv("CACHEGATE_BENCH_PURGE_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
	}
	start = time.Now()
	deleted, err := b.DeleteExpired(ctx, now)
	purged := time.Now()
	took := purged.Sub(start)
	pprof.StopCPUProfile()
	if err != nil {
		t.Fatalf("DeleteExpired: %v", err)
	}
	if deleted != int64(expired) {
		t.Errorf("DeleteExpired deleted %d, want %d", deleted, expired)
	}
	during := phase()
	t.Logf("DeleteExpired: %d of %d entries in %v (%.1f µs per entry)", deleted, n, took.Round(time.Millisecond),
		float64(took.Microseconds())/float64(max(deleted, 1)))
	listings(t, b, now) // while the sweep goes on

	// The rows the purge marked are removed in the background; the load
	// goes on until they are gone.
	for {
		var left int
		if err := b.reader.Get(&left, `SELECT COUNT(*) FROM entries WHERE deleted = 1`); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	swept := time.Since(purged)
	sweeping := phase()
	close(stop)
	wg.Wait()
	t.Logf("swept in %v (after the purge returned)", swept.Round(100*time.Millisecond))
	for i, name := range []string{"Get", "RecordHits(100)", "Put"} {
		t.Logf("%-16s before: %v", name, before[i])
		t.Logf("%-16s during the purge: %v", "", during[i])
		t.Logf("%-16s during the sweep: %v", "", sweeping[i])
	}
	holdsMu.Lock()
	for op, ds := range holds {
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		t.Logf("writer held by %q: %d transactions, %v in all; each %v", op, len(ds), sum.Round(time.Millisecond), summarizeLat(ds))
	}
	holdsMu.Unlock()
	tot, err := b.Count(ctx, cache.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	if err := b.reader.Get(&rows, `SELECT COUNT(*) FROM entries`); err != nil {
		t.Fatal(err)
	}
	if tot.Entries != rows {
		t.Errorf("totals say %d entries, the table has %d", tot.Entries, rows)
	}
	listings(t, b, now)
	recordHitsCost(t, b, fresh)
}

// lastMigration names the newest migration file, without its extension.
func lastMigration(tb testing.TB) string {
	tb.Helper()
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(names) == 0 {
		tb.Fatalf("no migrations found: %v", err)
	}
	return strings.TrimSuffix(slices.Max(names), ".sql")
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	src, err := os.Open(from)
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		tb.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		tb.Fatal(err)
	}
}

// listings times the first page and the 1,000th of the listings the admin
// UI offers, 50 entries a page, following the cursors to it, and counts
// the entries expired at now.
func listings(tb testing.TB, b *Backend, now time.Time) {
	tb.Helper()
	ctx := context.Background()
	start := time.Now()
	tot, err := b.Count(ctx, cache.Filter{Freshness: cache.Expired, Now: now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Logf("count expired: %d entries in %v", tot.Entries, time.Since(start).Round(10*time.Microsecond))
	for _, q := range []cache.Query{
		{Sort: cache.Sort{Field: cache.SortSize, Desc: true}},
		{Sort: cache.Sort{Field: cache.SortExpires, Desc: true}},
		{Sort: cache.Sort{Field: cache.SortExpires}}, // starts with the deleted rows until swept
		{Sort: cache.Sort{Field: cache.SortHits, Desc: true}},
		{Sort: cache.Sort{Field: cache.SortCreated, Desc: true}},
		{Sort: cache.Sort{Field: cache.SortURL}},
		{Filter: cache.Filter{Upstream: "bench"}, Sort: cache.Sort{Field: cache.SortSize, Desc: true}},
		{Filter: cache.Filter{Upstream: "bench"}, Sort: cache.Sort{Field: cache.SortHits, Desc: true}},
		{Filter: cache.Filter{Upstream: "bench"}, Sort: cache.Sort{Field: cache.SortCreated, Desc: true}},
	} {
		q.Limit = 50
		var first, deep, slowest time.Duration
		for page := 1; page <= 1000; page++ {
			start := time.Now()
			p, err := b.List(ctx, q)
			d := time.Since(start)
			if err != nil {
				tb.Fatalf("List(%+v): %v", q, err)
			}
			slowest = max(slowest, d)
			switch page {
			case 1:
				first = d
			case 1000:
				deep = d
			}
			if p.Next == "" {
				tb.Fatalf("List(%+v): no page after %d", q, page)
			}
			q.Cursor = p.Next
		}
		name := string(q.Sort.Field)
		if q.Sort.Desc {
			name += " desc"
		}
		if q.Filter.Upstream != "" {
			name = "upstream, " + name
		}
		tb.Logf("list %-22s first page %v, page 1000 %v, slowest %v", name, first.Round(10*time.Microsecond),
			deep.Round(10*time.Microsecond), slowest.Round(10*time.Microsecond))
	}
}

// recordHitsCost times RecordHits batches of 1,000 random entries, with
// nothing else going on.
func recordHitsCost(tb testing.TB, b *Backend, keys []string) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	var ds []time.Duration
	for range 20 {
		batch := make([]cache.Hit, 1000)
		for i := range batch {
			batch[i] = cache.Hit{Key: keys[rng.IntN(len(keys))], Count: 1, Last: time.Now()}
		}
		start := time.Now()
		if err := b.RecordHits(context.Background(), batch); err != nil {
			tb.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	tb.Logf("RecordHits of 1000 random entries: %v", summarizeLat(ds))
}

type latencies struct {
	n             int
	p50, p99, max time.Duration
}

func (l latencies) String() string {
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", l.n, l.p50.Round(time.Microsecond), l.p99.Round(time.Microsecond), l.max.Round(time.Microsecond))
}

func summarizeLat(ds []time.Duration) latencies {
	if len(ds) == 0 {
		return latencies{}
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	at := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	return latencies{n: len(ds), p50: at(0.5), p99: at(0.99), max: ds[len(ds)-1]}
}

// isExpired reports whether purgeEntries' entry i of n is expired: a fixed
// permutation scatters the expired ones over the index range, and so over
// the rowids and keys.
func isExpired(i, n, expired int) bool {
	return (i*purgeStride(n))%n < expired
}

func purgeStride(n int) int {
	s := 2_654_435_761 % n
	for gcd(s, n) != 1 {
		s++
	}
	return s
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// purgeEntries returns n entries, spread as bench/cmd/benchrun's
// fillEntries spreads them (sizes 95% 32..767 bytes, 4.9% 768 B..4 KiB,
// 0.1% 4..64 KiB; `expired` of them expired up to 29 days before now, the
// rest expiring within 30 days except 3% that never expire; a quarter hit
// up to 500 times), in key order, which Load takes fastest, and their keys
// by index.
func purgeEntries(n, expired int, now time.Time) (func(func(*cache.Entry) bool), []string) {
	const maxSize = 4096 + 61440
	pad := make([]byte, maxSize)
	for i := range pad {
		pad[i] = 'a' + byte(i%26)
	}
	header := http.Header{"Cache-Control": {"public, max-age=3600"}, "Content-Type": {"application/octet-stream"}}
	const day = 24 * time.Hour
	keys := make([]string, n)
	order := make([]int32, n)
	for i := range n {
		keys[i] = cache.MakeKey("purge", strconv.Itoa(i))
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(keys[a], keys[b]) })
	entry := func(i int) *cache.Entry {
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
		case isExpired(i, n, expired):
			expires = now.Add(-time.Minute - time.Duration(h2%uint64(29*day/time.Second))*time.Second)
			created = expires.Add(-time.Hour - time.Duration((h2>>32)%uint64(day/time.Second))*time.Second)
		case (h2>>40)%100 < 3:
			created = now.Add(-time.Duration(h2%uint64(30*day/time.Millisecond)) * time.Millisecond)
		default:
			created = now.Add(-time.Duration(h2%uint64(30*day/time.Millisecond)) * time.Millisecond)
			expires = now.Add(time.Hour + time.Duration((h2>>20)%uint64(30*day/time.Second))*time.Second)
		}
		e := &cache.Entry{
			Key: keys[i], BaseKey: keys[i], Upstream: "bench", Method: http.MethodGet,
			URL:           "http://127.0.0.1:8081/bytes/" + strconv.Itoa(size) + "?item=" + strconv.Itoa(i),
			RequestHeader: http.Header{}, Status: http.StatusOK, Header: header,
			Body: pad[:size], Size: int64(size), ContentType: "application/octet-stream",
			RequestTime: created.Add(-2 * time.Millisecond), Created: created, Expires: expires,
			Reason: "Cache-Control: max-age=3600",
		}
		if (h2>>50)%4 == 0 {
			e.Hits = int64(1 + (h2>>52)%500)
			if last := created.Add(time.Duration(h2 % uint64(now.Sub(created)+1))); last.Before(now) {
				e.LastHit = last
			}
		}
		return e
	}
	seq := func(yield func(*cache.Entry) bool) {
		for _, i := range order {
			if !yield(entry(int(i))) {
				return
			}
		}
	}
	return seq, keys
}

// splitmix is SplitMix64's output function: a cheap, well-mixed hash of i.
func splitmix(i uint64) uint64 {
	z := i + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
