package cache_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
)

func TestParseHTTPDate(t *testing.T) {
	want := time.Date(1994, time.November, 6, 8, 49, 37, 0, time.UTC)
	for _, s := range []string{
		"Sun, 06 Nov 1994 08:49:37 GMT",  // IMF-fixdate, the fast path
		"Sunday, 06-Nov-94 08:49:37 GMT", // RFC 850
		"Sun Nov  6 08:49:37 1994",       // asctime
	} {
		got, ok := cache.ParseHTTPDate(s)
		if !ok || !got.Equal(want) {
			t.Errorf("%q: got %v %v, want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "0", "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 06 Xyz 1994 08:49:37 GMT", "garbage"} {
		if _, ok := cache.ParseHTTPDate(s); ok {
			t.Errorf("%q parsed, want invalid", s)
		}
	}
	// The fast path agrees with net/http's format on every day of years
	// around the epoch, leap years (2000, 2024) and centuries that are not
	// (1900, 2100), and the ends of the four-digit range.
	for _, year := range []int{0, 1, 399, 400, 1899, 1900, 1969, 1970, 1999, 2000, 2024, 2026, 2100, 9999} {
		for d := time.Date(year, 1, 1, 13, 14, 15, 0, time.UTC); d.Year() == year; d = d.AddDate(0, 0, 1) {
			s := d.Format(http.TimeFormat)
			if got, ok := cache.ParseHTTPDate(s); !ok || !got.Equal(d) {
				t.Fatalf("%q: got %v %v", s, got, ok)
			}
		}
	}
	for _, s := range []string{
		"Sun, 29 Feb 2100 08:49:37 GMT", // not a leap year
		"Sun, 31 Apr 2026 08:49:37 GMT",
		"Sun, 00 Nov 1994 08:49:37 GMT",
		"Sun, 06 N0v 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 08:60:37 GMT",
	} {
		if _, ok := cache.ParseHTTPDate(s); ok {
			t.Errorf("%q parsed, want invalid", s)
		}
	}
	// Month names in any case, a leap second, surrounding space.
	if got, ok := cache.ParseHTTPDate(" Sun, 06 NOV 1994 08:49:60 GMT "); !ok || !got.Equal(want.Add(23*time.Second)) {
		t.Errorf("upper-case month with a leap second: got %v %v", got, ok)
	}
	if got, ok := cache.ParseHTTPDate("Mon, 29 Feb 2000 00:00:00 GMT"); !ok || !got.Equal(time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC)) || got.Location() != time.UTC {
		t.Errorf("29 Feb 2000: got %v %v", got, ok)
	}
}

func TestParseCacheControl(t *testing.T) {
	h := http.Header{"Cache-Control": {`max-age=60, no-cache="Set-Cookie, X-Foo"`, "Public, s-maxage=\"30\""}}
	d := cache.ParseCacheControl(h)
	if v, ok := d.Seconds("max-age"); !ok || v != time.Minute {
		t.Fatalf("max-age: %v %v", v, ok)
	}
	if v, _ := d.Seconds("s-maxage"); v != 30*time.Second {
		t.Fatalf("quoted s-maxage: %v", v)
	}
	if d["no-cache"] != "Set-Cookie, X-Foo" || !d.Has("public") {
		t.Fatalf("directives %v", d)
	}
	dup := cache.ParseCacheControl(http.Header{"Cache-Control": {"max-age=60, max-age=3600"}})
	if v, _ := dup.Seconds("max-age"); v != 0 {
		t.Fatalf("duplicate max-age gives %v, want 0 (stale)", v)
	}
	if v, _ := cache.ParseCacheControl(http.Header{"Cache-Control": {"max-age=99999999999999999999"}}).Seconds("max-age"); v != (1<<31)*time.Second {
		t.Fatalf("overflowing max-age gives %v, want 2^31 s", v)
	}
}
