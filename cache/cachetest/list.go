package cachetest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// now is when the fixture's freshness is judged: T0 plus an hour.
var now = T0.Add(time.Hour)

// fixture returns entries that differ in every filterable and sortable
// field, with deliberate ties (sizes, hits, URLs, expiries) and URLs holding
// the characters that SQL LIKE and GLOB treat specially.
func fixture() []*cache.Entry {
	type row struct {
		key, upstream, method, url string
		status                     int
		ct                         string
		size                       int
		created                    time.Duration // after T0
		expires                    time.Duration // after T0; never when -1
		hits                       int64
	}
	const never = -1
	rows := []row{
		{"a", "github", "GET", "https://api.github.com/repos/a/releases?page=1", 200, "application/json", 100, 0, 2 * time.Hour, 5},
		{"b", "github", "GET", "https://api.github.com/repos/b/issues", 200, "application/json", 200, 1 * time.Minute, 30 * time.Minute, 0},
		{"c", "github", "HEAD", "https://api.github.com/rate_limit", 304, "", 0, 2 * time.Minute, never, 0},
		{"d", "demo", "GET", "http://demo.local/image/png", 200, "image/png", 300, 3 * time.Minute, 90 * time.Minute, 5},
		{"e", "demo", "GET", "http://demo.local/image/jpeg", 200, "image/jpeg", 300, 4 * time.Minute, time.Hour, 1},
		{"f", "demo", "POST", "http://demo.local/post", 201, "application/json", 50, 5 * time.Minute, never, 0},
		{"g", "demo", "GET", "http://demo.local/status/404", 404, "text/plain", 10, 6 * time.Minute, -time.Hour, 2},
		{"h", "other", "GET", "https://example.com/a_b%20c[1]?q=1", 200, "text/html", 1000, 7 * time.Minute, 24 * time.Hour, 10},
		{"i", "other", "GET", "https://example.com/aXb%20c1?q=1&img=imagery", 200, "imagex/y", 1, 8 * time.Minute, 3 * time.Hour, 1},
		{"j", "other", "GET", "https://example.com/vary", 200, "text/html", 300, 9 * time.Minute, 2 * time.Hour, 5},
		{"k", "other", "GET", "https://example.com/vary", 200, "text/html", 300, 10 * time.Minute, never, 0},
	}
	entries := make([]*cache.Entry, len(rows))
	for i, r := range rows {
		e := NewEntry(r.key)
		e.Upstream, e.Method, e.URL, e.Status = r.upstream, r.method, r.url, r.status
		e.ContentType = r.ct
		e.Header = http.Header{"Content-Type": {r.ct}}
		body := make([]byte, r.size)
		for j := range body {
			body[j] = r.key[0]
		}
		SetBody(e, body)
		e.Created = T0.Add(r.created)
		e.RequestTime = e.Created.Add(-time.Millisecond)
		if r.expires == never {
			e.Expires = time.Time{}
		} else {
			e.Expires = T0.Add(r.expires)
		}
		e.Hits = r.hits
		if r.hits > 0 {
			e.LastHit = e.Created.Add(time.Second)
		}
		switch r.key {
		case "a":
			e.RequestHeader = http.Header{"Authorization": {"REDACTED"}, "Accept": {"application/json"}}
		case "h":
			e.RequestHeader = http.Header{"cookie": {"REDACTED"}} // credentials match in any case
		case "b":
			e.RequestHeader = http.Header{"Accept": {"Authorization"}} // a value is not a name
		}
		if r.key == "j" || r.key == "k" {
			e.BaseKey = "base-jk" // two variants of one resource
		}
		// Set-Cookie and Vary for the audit's filters: names in any case,
		// a list with spaces, and a name that only contains another.
		switch r.key {
		case "c":
			e.Header["Set-Cookie"] = []string{"sid=REDACTED"}
		case "f":
			e.Header["set-cookie2"] = []string{"old=1"}
		case "j":
			e.Header["Vary"] = []string{"Accept-Encoding , X-Token"}
		case "k":
			e.Header["vary"] = []string{"x-token"}
		case "d":
			e.Header["Vary"] = []string{"X-Token-Id"}
		}
		// Validators for the stale filter: e has none, g only a
		// Last-Modified, d only an ETag; the others both.
		switch r.key {
		case "e":
			e.ETag, e.LastModified = "", ""
		case "g":
			e.ETag = ""
		case "d":
			e.LastModified = ""
		}
		if reason, ok := fixtureReasons[r.key]; ok {
			e.Reason = reason
		}
		entries[i] = e
	}
	return entries
}

// fixtureReasons are the expiry reasons of some fixture entries, as the
// policy words them, with the characters LIKE and GLOB treat specially in
// a rule's pattern; the others keep NewEntry's.
var fixtureReasons = map[string]string{
	"a": `urls_expire_after pattern "/repos/*" gives 1h0m0s`,
	"b": `urls_expire_after pattern "/repos/*" says never expire`,
	"h": `urls_expire_after pattern "*a_b%*" gives 2h0m0s`,
	"i": `urls_expire_after pattern "*aXb*" gives 2h0m0s`,
	"j": "the upstream's Cache-Control: max-age=60 gives 1m0s",
}

func putFixture(tb testing.TB, b cache.Backend) []*cache.Entry {
	tb.Helper()
	entries := fixture()
	MustPut(tb, b, entries...)
	return entries
}

func filterCases() []struct {
	name string
	f    cache.Filter
	want []string // keys, in key order
} {
	return []struct {
		name string
		f    cache.Filter
		want []string
	}{
		{"empty", cache.Filter{}, []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}},
		{"keys", cache.Filter{Keys: []string{"a", "c", "missing"}}, []string{"a", "c"}},
		{"base key", cache.Filter{BaseKey: "base-jk"}, []string{"j", "k"}},
		{"upstream", cache.Filter{Upstream: "demo"}, []string{"d", "e", "f", "g"}},
		{"upstream unknown", cache.Filter{Upstream: "dem"}, nil},
		{"url substring", cache.Filter{URL: "image"}, []string{"d", "e", "i"}},
		{"url substring is case sensitive", cache.Filter{URL: "IMAGE"}, nil},
		{"url substring underscore is literal", cache.Filter{URL: "a_b"}, []string{"h"}},
		{"url substring percent and bracket are literal", cache.Filter{URL: "%20c["}, []string{"h"}},
		{"url substring percent", cache.Filter{URL: "%20"}, []string{"h", "i"}},
		{"url glob star crosses slashes", cache.Filter{URL: "*/repos/*"}, []string{"a", "b"}},
		{"url glob question mark", cache.Filter{URL: "https://api.github.com/repos/?/*"}, []string{"a", "b"}},
		{"url glob is anchored", cache.Filter{URL: "demo.local/*"}, nil},
		{"url glob prefix", cache.Filter{URL: "http://demo.local/image/*"}, []string{"d", "e"}},
		{"url glob suffix", cache.Filter{URL: "*/vary"}, []string{"j", "k"}},
		{"url glob underscore is literal", cache.Filter{URL: "*a_b*"}, []string{"h"}},
		{"url glob bracket is literal", cache.Filter{URL: "*c[1]*"}, []string{"h"}},
		{"url glob percent is literal", cache.Filter{URL: "*a_b%c*"}, nil},
		{"url glob question mark matches one char", cache.Filter{URL: "*%20c1?q=*"}, []string{"i"}},
		{"url glob exact", cache.Filter{URL: "http://demo.local/pos?"}, []string{"f"}},
		{"method", cache.Filter{Method: "POST"}, []string{"f"}},
		{"method head", cache.Filter{Method: "HEAD"}, []string{"c"}},
		{"status", cache.Filter{Status: 404}, []string{"g"}},
		{"status 200", cache.Filter{Status: 200}, []string{"a", "b", "d", "e", "h", "i", "j", "k"}},
		{"content type exact", cache.Filter{ContentType: "application/json"}, []string{"a", "b", "f"}},
		{"content type exact image", cache.Filter{ContentType: "image/png"}, []string{"d"}},
		{"content type prefix slash", cache.Filter{ContentType: "image/"}, []string{"d", "e"}},
		{"content type prefix star", cache.Filter{ContentType: "image/*"}, []string{"d", "e"}},
		{"content type text", cache.Filter{ContentType: "text/*"}, []string{"g", "h", "j", "k"}},
		{"content type no partial match", cache.Filter{ContentType: "image"}, nil},
		{"fresh", cache.Filter{Freshness: cache.Fresh, Now: now}, []string{"a", "c", "d", "f", "h", "i", "j", "k"}},
		{"expired (expiring exactly now counts)", cache.Filter{Freshness: cache.Expired, Now: now}, []string{"b", "e", "g"}},
		{"expired at wall clock", cache.Filter{Freshness: cache.Expired}, []string{"a", "b", "d", "e", "g", "h", "i", "j"}},
		{"fresh at wall clock", cache.Filter{Freshness: cache.Fresh}, []string{"c", "f", "k"}},
		{"stale: expired with an ETag or a Last-Modified", cache.Filter{Freshness: cache.Stale, Now: now}, []string{"b", "g"}},
		{"stale at wall clock", cache.Filter{Freshness: cache.Stale}, []string{"a", "b", "d", "g", "h", "i", "j"}},
		{"stale and upstream", cache.Filter{Freshness: cache.Stale, Upstream: "demo", Now: now}, []string{"g"}},
		{"min size", cache.Filter{MinSize: 300}, []string{"d", "e", "h", "j", "k"}},
		{"max size", cache.Filter{MaxSize: 50}, []string{"c", "f", "g", "i"}},
		{"size range", cache.Filter{MinSize: 100, MaxSize: 300}, []string{"a", "b", "d", "e", "j", "k"}},
		{"created after is inclusive", cache.Filter{CreatedAfter: T0.Add(7 * time.Minute)}, []string{"h", "i", "j", "k"}},
		{"created before is exclusive", cache.Filter{CreatedBefore: T0.Add(2 * time.Minute)}, []string{"a", "b"}},
		{"created range", cache.Filter{CreatedAfter: T0.Add(2 * time.Minute), CreatedBefore: T0.Add(4 * time.Minute)}, []string{"c", "d"}},
		{"expires after is inclusive and includes never", cache.Filter{ExpiresAfter: T0.Add(2 * time.Hour)}, []string{"a", "c", "f", "h", "i", "j", "k"}},
		{"expires before is exclusive and excludes never", cache.Filter{ExpiresBefore: T0.Add(time.Hour)}, []string{"b", "g"}},
		{"expires range", cache.Filter{ExpiresAfter: T0.Add(time.Hour), ExpiresBefore: T0.Add(2 * time.Hour)}, []string{"d", "e"}},
		{"reason prefix", cache.Filter{Reason: `urls_expire_after pattern "/repos/*"`}, []string{"a", "b"}},
		{"reason prefix is not a substring", cache.Filter{Reason: "expire_after"}, []string{"c", "d", "e", "f", "g", "k"}},
		{"reason prefix underscore and percent are literal", cache.Filter{Reason: `urls_expire_after pattern "*a_b%`}, []string{"h"}},
		{"reason prefix star is literal", cache.Filter{Reason: `urls_expire_after pattern "*`}, []string{"h", "i"}},
		{"reason prefix is case sensitive", cache.Filter{Reason: "Expire_after"}, nil},
		{"reason whole", cache.Filter{Reason: "the upstream's Cache-Control: max-age=60 gives 1m0s"}, []string{"j"}},
		{"reason longer than any", cache.Filter{Reason: "expire_after 1h and more"}, nil},
		{"reason with upstream", cache.Filter{Upstream: "other", Reason: "urls_expire_after"}, []string{"h", "i"}},
		{"combined", cache.Filter{Upstream: "demo", Method: "GET", Freshness: cache.Expired, Now: now}, []string{"e", "g"}},
		{"combined none", cache.Filter{Upstream: "github", ContentType: "image/"}, nil},
		{"credentials", cache.Filter{Credentials: true}, []string{"a", "h"}},
		{"credentials combined", cache.Filter{Credentials: true, Upstream: "other"}, []string{"h"}},
		{"set-cookie", cache.Filter{SetCookie: true}, []string{"c", "f"}},
		{"set-cookie combined", cache.Filter{SetCookie: true, Upstream: "demo"}, []string{"f"}},
		{"vary on", cache.Filter{VaryOn: "x-token"}, []string{"j", "k"}},
		{"vary on another case", cache.Filter{VaryOn: "Accept-Encoding"}, []string{"j"}},
		{"vary on a prefix of a name", cache.Filter{VaryOn: "X-Tok"}, nil},
	}
}

func testListFilter(t *testing.T, b cache.Backend) {
	entries := putFixture(t, b)
	for _, c := range filterCases() {
		t.Run(c.name, func(t *testing.T) {
			// Guard the table itself: it must agree with cache.Filter.Match.
			var byMatch []string
			for _, e := range entries {
				if c.f.Match(e) {
					byMatch = append(byMatch, e.Key)
				}
			}
			if !slices.Equal(byMatch, c.want) {
				t.Fatalf("suite bug: Filter.Match gives %v, table wants %v", byMatch, c.want)
			}
			got := keysOf(listAll(t, b, cache.Query{Filter: c.f, Sort: cache.Sort{Field: cache.SortURL}, Limit: cache.MaxLimit}))
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Fatalf("List(%+v) keys = %v, want %v", c.f, got, c.want)
			}
			tot := mustCount(t, b, c.f)
			var bytes int64
			for _, e := range entries {
				if slices.Contains(c.want, e.Key) {
					bytes += e.Size
				}
			}
			if want := (cache.Totals{Entries: int64(len(c.want)), Bytes: bytes}); tot != want {
				t.Fatalf("Count(%+v) = %+v, want %+v", c.f, tot, want)
			}
		})
	}
}

func allSorts() []cache.Sort {
	var sorts []cache.Sort
	for _, f := range cache.SortFields {
		sorts = append(sorts, cache.Sort{Field: f}, cache.Sort{Field: f, Desc: true})
	}
	return sorts
}

// sorted returns the keys of entries in order s, the reference order every
// backend must reproduce.
func sorted(entries []*cache.Entry, s cache.Sort) []string {
	c := slices.Clone(entries)
	slices.SortFunc(c, func(a, b *cache.Entry) int {
		switch {
		case s.Less(a, b):
			return -1
		case s.Less(b, a):
			return 1
		}
		return 0
	})
	return keysOf(c)
}

func testListSort(t *testing.T, b cache.Backend) {
	entries := putFixture(t, b)
	for _, s := range allSorts() {
		t.Run(fmt.Sprintf("%s desc=%v", s.Field, s.Desc), func(t *testing.T) {
			p, err := b.List(context.Background(), cache.Query{Sort: s, Limit: 100})
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if got, want := keysOf(p.Entries), sorted(entries, s); !slices.Equal(got, want) {
				t.Fatalf("List sorted by %s desc=%v = %v, want %v", s.Field, s.Desc, got, want)
			}
			if p.Next != "" {
				t.Fatalf("Next = %q on a page holding every entry, want empty", p.Next)
			}
		})
	}
	t.Run("default is created desc", func(t *testing.T) {
		p, err := b.List(context.Background(), cache.Query{})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		want := []string{"k", "j", "i", "h", "g", "f", "e", "d", "c", "b", "a"}
		if got := keysOf(p.Entries); !slices.Equal(got, want) {
			t.Fatalf("List with zero Sort = %v, want %v", got, want)
		}
	})
}

// testListSortTies spells out the tie-breaks the fixture holds, so a
// mistake shared by Sort.Less and a backend would still show.
func testListSortTies(t *testing.T, b cache.Backend) {
	putFixture(t, b)
	cases := []struct {
		s    cache.Sort
		want []string
	}{
		{cache.Sort{Field: cache.SortSize}, []string{"c", "i", "g", "f", "a", "b", "d", "e", "j", "k", "h"}},
		{cache.Sort{Field: cache.SortSize, Desc: true}, []string{"h", "k", "j", "e", "d", "b", "a", "f", "g", "i", "c"}},
		{cache.Sort{Field: cache.SortExpires}, []string{"g", "b", "e", "d", "a", "j", "i", "h", "c", "f", "k"}},
		{cache.Sort{Field: cache.SortExpires, Desc: true}, []string{"k", "f", "c", "h", "i", "j", "a", "d", "e", "b", "g"}},
		{cache.Sort{Field: cache.SortHits, Desc: true}, []string{"h", "j", "d", "a", "g", "i", "e", "k", "f", "c", "b"}},
		{cache.Sort{Field: cache.SortURL}, []string{"e", "d", "f", "g", "c", "a", "b", "i", "h", "j", "k"}},
		{cache.Sort{Field: cache.SortURL, Desc: true}, []string{"k", "j", "h", "i", "b", "a", "c", "g", "f", "d", "e"}},
	}
	for _, c := range cases {
		p, err := b.List(context.Background(), cache.Query{Sort: c.s})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if got := keysOf(p.Entries); !slices.Equal(got, c.want) {
			t.Errorf("List sorted by %s desc=%v = %v, want %v", c.s.Field, c.s.Desc, got, c.want)
		}
	}
}

func testListPagination(t *testing.T, b cache.Backend) {
	entries := putFixture(t, b)
	filters := []cache.Filter{{}, {Upstream: "other"}, {Freshness: cache.Fresh, Now: now}}
	for _, f := range filters {
		var match []*cache.Entry
		for _, e := range entries {
			if f.Match(e) {
				match = append(match, e)
			}
		}
		for _, s := range allSorts() {
			for _, limit := range []int{1, 2, 3, len(match)} {
				name := fmt.Sprintf("%s desc=%v limit=%d filter=%+v", s.Field, s.Desc, limit, f)
				got := keysOf(listAll(t, b, cache.Query{Filter: f, Sort: s, Limit: limit}))
				if want := sorted(match, s); !slices.Equal(got, want) {
					t.Errorf("%s: pages gave %v, want %v", name, got, want)
				}
			}
		}
	}
}

func testListPaginationTies(t *testing.T, b cache.Backend) {
	// 25 entries that tie on every sort value but the key.
	var entries []*cache.Entry
	for i := range 25 {
		e := SetBody(NewEntry(fmt.Sprintf("k%02d", (i*7)%25)), []byte("seven!!"))
		e.URL = "https://demo.example/same"
		e.Hits = 3
		entries = append(entries, e)
	}
	MustPut(t, b, entries...)
	for _, s := range allSorts() {
		got := keysOf(listAll(t, b, cache.Query{Sort: s, Limit: 4}))
		if want := sorted(entries, s); !slices.Equal(got, want) {
			t.Errorf("%s desc=%v: pages gave %v, want %v", s.Field, s.Desc, got, want)
		}
	}
}

func testListLimit(t *testing.T, b cache.Backend) {
	ctx := context.Background()
	n := cache.MaxLimit + 5
	entries := make([]*cache.Entry, n)
	for i := range entries {
		e := NewEntry(fmt.Sprintf("k%04d", i))
		SetBody(e, []byte{byte(i)})
		e.Created = T0.Add(time.Duration(i) * time.Millisecond)
		entries[i] = e
	}
	MustPut(t, b, entries...)
	for _, c := range []struct {
		limit, want int
	}{{0, cache.DefaultLimit}, {-3, cache.DefaultLimit}, {7, 7}, {cache.MaxLimit + 1, cache.MaxLimit}, {1 << 30, cache.MaxLimit}} {
		p, err := b.List(ctx, cache.Query{Limit: c.limit})
		if err != nil {
			t.Fatalf("List(Limit %d): %v", c.limit, err)
		}
		if len(p.Entries) != c.want || p.Next == "" {
			t.Errorf("List(Limit %d) = %d entries, Next %q; want %d and a cursor", c.limit, len(p.Entries), p.Next, c.want)
		}
	}
	all := listAll(t, b, cache.Query{Limit: 1 << 30})
	if len(all) != n {
		t.Fatalf("walking clamped pages gave %d entries, want %d", len(all), n)
	}
	if tot := mustCount(t, b, cache.Filter{}); tot.Entries != int64(n) || tot.Bytes != int64(n) {
		t.Fatalf("Count = %+v, want %d entries of one byte", tot, n)
	}
}

func testListBadInput(t *testing.T, b cache.Backend) {
	ctx := context.Background()
	putFixture(t, b)
	p, err := b.List(ctx, cache.Query{Sort: cache.Sort{Field: cache.SortSize}, Limit: 2})
	if err != nil || p.Next == "" {
		t.Fatalf("List = %v, %v; want a page with a cursor", p.Next, err)
	}
	for _, c := range []struct {
		name string
		q    cache.Query
	}{
		{"cursor from another field", cache.Query{Sort: cache.Sort{Field: cache.SortCreated}, Cursor: p.Next}},
		{"cursor from another direction", cache.Query{Sort: cache.Sort{Field: cache.SortSize, Desc: true}, Cursor: p.Next}},
		{"malformed cursor", cache.Query{Sort: cache.Sort{Field: cache.SortSize}, Cursor: "not a cursor!"}},
		{"unknown sort field", cache.Query{Sort: cache.Sort{Field: "color"}}},
	} {
		_, err := b.List(ctx, c.q)
		if !errors.Is(err, cache.ErrInvalid) {
			t.Errorf("%s: List err = %v, want one wrapping cache.ErrInvalid", c.name, err)
		}
	}
}

func testListBody(t *testing.T, b cache.Backend) {
	ctx := context.Background()
	entries := putFixture(t, b)
	want := map[string]*cache.Entry{}
	for _, e := range entries {
		want[e.Key] = e
	}
	for _, withBody := range []bool{false, true} {
		p, err := b.List(ctx, cache.Query{WithBody: withBody, Limit: 100})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(p.Entries) != len(entries) {
			t.Fatalf("List gave %d entries, want %d", len(p.Entries), len(entries))
		}
		for _, got := range p.Entries {
			w := want[got.Key]
			if !withBody {
				if got.Body != nil {
					t.Fatalf("List without WithBody: %q has a %d-byte body, want nil", got.Key, len(got.Body))
				}
				w = w.WithoutBody()
			}
			if d := Diff(got, w); d != "" {
				t.Fatalf("List(WithBody %v): entry %q differs: %s", withBody, got.Key, d)
			}
		}
	}
}
