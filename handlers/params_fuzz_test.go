package handlers

// In package handlers: parseFilter and Selection.filter are unexported, and
// the fuzz targets check what they return, below any routing.

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
)

var fuzzNow = time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)

// fuzzEntry is what a parsed filter is matched against: any filter the
// parser accepts must be usable.
var fuzzEntry = &cache.Entry{
	Key: "k", BaseKey: "k", Upstream: "github", Method: "GET", URL: "https://api.github.com/repos/golang/go?x=1",
	Status: 200, ContentType: "application/json", Size: 1234,
	Created: fuzzNow.Add(-time.Hour), Expires: fuzzNow.Add(time.Hour),
}

// checkFilterResult holds for every answer of parseFilter: an error is a
// 400 *Error with a code, and an accepted filter is in range.
func checkFilterResult(tb testing.TB, input string, f cache.Filter, err error) {
	tb.Helper()
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Code == "" || e.Message == "" {
			tb.Fatalf("%q: error %#v is not a 400 *Error with a code and a message", input, err)
		}
		return
	}
	if f.BaseKey != "" && !cache.ValidKey(f.BaseKey) {
		tb.Fatalf("%q: accepted base_key %q", input, f.BaseKey)
	}
	if f.Status != 0 && (f.Status < 100 || f.Status > 999) {
		tb.Fatalf("%q: accepted status %d", input, f.Status)
	}
	if f.MinSize < 0 || f.MaxSize < 0 {
		tb.Fatalf("%q: accepted sizes %d, %d", input, f.MinSize, f.MaxSize)
	}
	switch f.Freshness {
	case "", cache.Fresh, cache.Expired, cache.Stale:
	default:
		tb.Fatalf("%q: accepted freshness %q", input, f.Freshness)
	}
	f.Match(fuzzEntry) // must not panic
}

// The query string of GET /api/entries (and of every other listing) goes
// through queryParams and parseFilter.
func FuzzParseFilterQuery(f *testing.F) {
	for _, s := range []string{
		"upstream=github&url=/repos/*&freshness=expired",
		"status=200&min_size=10KiB&max_size=2MB",
		"created_after=2024-05-01&created_before=-24h&expires_after=2024-05-01T12:00:00Z",
		"expires_before=9999999999h", "base_key=abc_-", "base_key=../../etc", "status=99", "status=1e3",
		"min_size=-1", "max_size=99999999999 EB", "freshness=stale", "freshness=old", "url=*?*?*?*?*?*?*?*?*", "content_type=image/",
		"upstrem=github", "upstream=a&upstream=b", "method=get", "url=%zz", "created_after=2024-13-45",
	} {
		f.Add(s)
	}
	accepted := append([]string{"sort", "order", "limit", "next", "count", "backend"}, filterParams...)
	f.Fuzz(func(t *testing.T, raw string) {
		r := &http.Request{URL: &url.URL{Path: "/api/entries", RawQuery: raw}}
		v, err := queryParams(r, accepted...)
		if err != nil {
			checkFilterResult(t, raw, cache.Filter{}, err)
			return
		}
		for name, vals := range v {
			if len(vals) > 1 {
				t.Fatalf("%q: %s given %d times was accepted", raw, name, len(vals))
			}
		}
		fl, err := parseFilter(v, "", fuzzNow)
		checkFilterResult(t, raw, fl, err)
	})
}

// The "filter" object of bulk bodies (delete, revalidate, export) goes
// through Selection.filter: a destructive request, so an accepted selection
// must select something explicit.
func FuzzSelectionFilter(f *testing.F) {
	for _, s := range []string{
		`{"filter":{"upstream":"github"}}`,
		`{"filter":{"status":200,"min_size":"10KiB"}}`,
		`{"keys":["abc","def"]}`,
		`{"keys":["../x"]}`,
		`{"all":true}`,
		`{"all":true,"filter":{"upstream":"x"}}`,
		`{}`,
		`{"filter":{"upstrem":"github"}}`,
		`{"filter":{"url":null}}`,
		`{"filter":{"url":["a"]}}`,
		`{"filter":{"status":true}}`,
		`{"filter":{"expires_before":"-24h"}}`,
		`{"filter":{"upstream":" "}}`, // once selected everything for a delete
	} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, body string, requireSome bool) {
		var s Selection
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			return
		}
		fl, err := s.filter(fuzzNow, requireSome)
		checkFilterResult(t, body, fl, err)
		if err != nil {
			return
		}
		for _, k := range fl.Keys {
			if !cache.ValidKey(k) {
				t.Fatalf("%q: accepted key %q", body, k)
			}
		}
		if requireSome && !s.All && len(fl.Keys) == 0 && reflect.DeepEqual(fl, cache.Filter{Now: fuzzNow}) {
			t.Fatalf("%q: an empty selection was accepted for a destructive operation", body)
		}
	})
}
