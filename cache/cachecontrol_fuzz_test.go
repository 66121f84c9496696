package cache_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// Every Cache-Control line an upstream or a client sends reaches
// ParseCacheControl, so whatever it is given it must not panic, and what
// the rules read from its result must stay inside the bounds they assume.
func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{
		"max-age=60",
		"public, max-age=3600, s-maxage=60",
		`no-cache="Set-Cookie, X-Foo", private`,
		`private="Set-Cookie"`,
		"max-age=60, max-age=120",
		"MAX-AGE = 10 , No-Store",
		"max-age=99999999999999999999",
		"max-age=-1",
		`max-age="30"`,
		`stale-if-error=30, stale-while-revalidate="x\"y"`,
		`"unterminated, max-age=1`,
		`a\,b, =, ,,, =x`,
		"immutable\x00, \xff\xfe=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		d := cache.ParseCacheControl(http.Header{"Cache-Control": {line}})
		for name := range d {
			if name != strings.ToLower(name) {
				t.Errorf("directive name %q is not lower case", name)
			}
			if name != strings.TrimSpace(name) {
				t.Errorf("directive name %q keeps white space", name)
			}
		}
		for _, name := range []string{"max-age", "s-maxage", "max-stale", "min-fresh", "stale-if-error", "stale-while-revalidate"} {
			v, ok := d.Seconds(name)
			if ok != d.Has(name) {
				t.Errorf("Seconds(%q) ok = %v, Has = %v", name, ok, d.Has(name))
			}
			if v < 0 || v > (1<<31)*time.Second {
				t.Errorf("Seconds(%q) = %v, out of [0, 2^31s]", name, v)
			}
		}
		// Without quotes, one field line is the same as its directives
		// sent as separate field lines (RFC 9110 section 5.3).
		if !strings.ContainsAny(line, `"\`) {
			split := cache.ParseCacheControl(http.Header{"Cache-Control": strings.Split(line, ",")})
			if len(split) != len(d) {
				t.Fatalf("one line %q: %v; split into lines: %v", line, d, split)
			}
			for k, v := range d {
				if sv, ok := split[k]; !ok || sv != v {
					t.Fatalf("one line %q: %v; split into lines: %v", line, d, split)
				}
			}
		}
	})
}

// ParseHTTPDate reads Date, Expires and Last-Modified. Its fast path for
// IMF-fixdate must accept every well-formed date time.Parse accepts in that
// layout, with the same instant, and anything it accepts must survive a
// round trip.
func FuzzParseHTTPDate(f *testing.F) {
	for _, s := range []string{
		"Sun, 06 Nov 1994 08:49:37 GMT",
		"sun, 06 nov 1994 08:49:37 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov  6 08:49:37 1994",
		"Mon, 29 Feb 2016 23:59:60 GMT",
		"Tue, 29 Feb 2015 00:00:00 GMT",
		"Thu, 01 Jan 1970 00:00:00 GMT",
		"Fri, 31 Dec 9999 23:59:59 GMT",
		"Sat, 01 Jan 0000 00:00:00 GMT",
		"Sun, 06 Nov 1994 8:49:37 GMT",
		"  Sun, 06 Nov 1994 08:49:37 GMT  ",
		"0",
		"-1",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := cache.ParseHTTPDate(s)
		// time.Parse also takes a one-digit hour or runs of spaces, which
		// RFC 9111 section 5.3 makes an invalid date: compare only the
		// strings it would write itself.
		if want, err := time.Parse(http.TimeFormat, s); err == nil && strings.EqualFold(want.Format(http.TimeFormat), s) {
			if !ok || !got.Equal(want) {
				t.Fatalf("ParseHTTPDate(%q) = %v, %v; time.Parse gives %v", s, got, ok, want)
			}
		}
		if !ok {
			if !got.IsZero() {
				t.Fatalf("ParseHTTPDate(%q) failed but returned %v", s, got)
			}
			return
		}
		if got.Year() < 0 || got.Year() > 9999 {
			return // http.TimeFormat cannot write it
		}
		again, ok := cache.ParseHTTPDate(got.UTC().Format(http.TimeFormat))
		if !ok || !again.Equal(got) {
			t.Fatalf("ParseHTTPDate(%q) = %v, but its own IMF-fixdate reads back as %v, %v", s, got, again, ok)
		}
	})
}
