package gateway

// These fuzz targets live in package gateway: normalizeURL, newKeyedRequest
// and target are unexported, and the invariants are about them, not about
// what a whole request makes of them (e2e/hostile_test.go does that).

import (
	"math/rand"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// fuzzIgnored are the ignored parameters of the fuzzed policy; the fuzzer
// may add one more name of its own.
var fuzzIgnored = []string{"access_token", "api key", "sig"}

func fuzzPolicy(extra string) *cache.Policy {
	p := cache.DefaultPolicy(cache.Expiry(time.Hour))
	p.IgnoredParameters = append(append([]string(nil), fuzzIgnored...), extra)
	return &p
}

// checkRedacted fails when a stored query holds the value of an ignored
// parameter: every pair whose decoded name is ignored must read
// name=REDACTED.
func checkRedacted(tb testing.TB, stored string, p *cache.Policy) {
	tb.Helper()
	for _, part := range strings.FieldsFunc(stored, isQuerySeparator) {
		name, value, _ := strings.Cut(part, "=")
		decoded, err := url.QueryUnescape(name)
		if err != nil {
			decoded = name
		}
		if p.IsIgnored(decoded) && value != Redacted {
			tb.Fatalf("stored query %q keeps ignored parameter %q with value %q", stored, decoded, value)
		}
	}
}

// isQuerySeparator: some servers split a query on ';' as well as '&', so
// neither may hide an ignored parameter.
func isQuerySeparator(r rune) bool { return r == '&' || r == ';' }

// checkNoIgnored fails when a key's query holds an ignored parameter.
func checkNoIgnored(tb testing.TB, key string, p *cache.Policy) {
	tb.Helper()
	if key == "" {
		return
	}
	for _, part := range strings.FieldsFunc(key, isQuerySeparator) {
		name, _, _ := strings.Cut(part, "=")
		decoded, err := url.QueryUnescape(name)
		if err != nil {
			decoded = name
		}
		if p.IsIgnored(decoded) {
			tb.Fatalf("key query %q holds ignored parameter %q", key, decoded)
		}
	}
}

// shuffled returns raw's &-separated parts in a random order chosen by
// seed.
func shuffled(raw string, seed int64) string {
	parts := strings.Split(raw, "&")
	r := rand.New(rand.NewSource(seed))
	r.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
	return strings.Join(parts, "&")
}

// normalizeQuery decides what the cache key and the stored URL hold of a
// query: normalising is idempotent, the order of parameters never matters,
// ignored parameters never reach the key and are stored only as REDACTED.
func FuzzNormalizeQuery(f *testing.F) {
	for _, s := range []string{
		"", "a=1", "b=2&a=1", "a=2&a=1", "access_token=secret&x=1",
		"access%5Ftoken=secret", "api+key=s3cret&api%20key=other", "sig", "sig=",
		"&&a=1&&", "a=%zz&b=%", "x=1;access_token=s", "access_token=s;x=1", "x=1;;access_token=s;y", "%61ccess_token=secret",
		"=x&=y", "a=1#frag", "a=\x00&b=\xff",
	} {
		f.Add(s, "token", int64(1))
	}
	f.Fuzz(func(t *testing.T, raw, extra string, seed int64) {
		p := fuzzPolicy(extra)
		key, stored := normalizeQuery(raw, p)
		checkRedacted(t, stored, p)
		checkNoIgnored(t, key, p)
		if k2, _ := normalizeQuery(key, p); k2 != key {
			t.Fatalf("key not idempotent: %q → %q → %q", raw, key, k2)
		}
		if _, s2 := normalizeQuery(stored, p); s2 != stored {
			t.Fatalf("stored query not idempotent: %q → %q → %q", raw, stored, s2)
		}
		rk, rs := normalizeQuery(shuffled(raw, seed), p)
		if rk != key || rs != stored {
			t.Fatalf("reordering %q changed the result: key %q vs %q, stored %q vs %q", raw, key, rk, stored, rs)
		}
	})
}

// newKeyedRequest, for any URL a client can make the gateway build: the
// key is always a valid key, the same for a reordered query and for any
// value of an ignored parameter, the stored URL never holds that value, and
// the normalised URL normalises to itself.
func FuzzKeyedRequest(f *testing.F) {
	for _, s := range []string{
		"http://Example.COM:80/a/b?b=2&a=1",
		"https://example.com:443/?access_token=secret",
		"https://example.com:8443/x%2Fy?sig=abc&q=1",
		"http://[::1]:80/p?a=1",
		"http://example.com/%7Euser/?api+key=k",
		"http://example.com",
		"http://example.com/a?=&&=",
		"HTTP://EXAMPLE.COM/Case?Access_Token=x",
	} {
		f.Add(s, "token", "value", int64(7))
	}
	f.Fuzz(func(t *testing.T, rawURL, extra, secret string, seed int64) {
		u, err := url.Parse(rawURL)
		if err != nil {
			return
		}
		up := upstream{Upstream: Upstream{Name: "demo", URL: &url.URL{Scheme: "http", Host: "example.com", Path: "/api"}, Policy: *fuzzPolicy(extra)}}
		p := &up.Policy

		kr, err := newKeyedRequest(&up, http.MethodGet, u, http.Header{}, nil)
		if err != nil {
			t.Fatalf("newKeyedRequest(%q): %v", rawURL, err)
		}
		if !cache.ValidKey(kr.base) {
			t.Fatalf("key %q of %q is not a valid key", kr.base, rawURL)
		}
		_, storedQ, _ := strings.Cut(kr.storedURL, "?")
		checkRedacted(t, storedQ, p)

		_, stored, _ := normalizeURL(u, p)
		if su, err := url.Parse(stored); err == nil && su.Fragment == "" {
			if _, again, _ := normalizeURL(su, p); again != stored {
				t.Fatalf("stored URL not idempotent: %q → %q → %q", rawURL, stored, again)
			}
		}

		// The same request with its query reordered.
		r := *u
		r.RawQuery = shuffled(u.RawQuery, seed)
		kr2, err := newKeyedRequest(&up, http.MethodGet, &r, http.Header{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if kr2.base != kr.base || kr2.storedURL != kr.storedURL {
			t.Fatalf("reordered query %q vs %q: keys %q vs %q, stored %q vs %q", u.RawQuery, r.RawQuery, kr.base, kr2.base, kr.storedURL, kr2.storedURL)
		}

		// The same request with another value for an ignored parameter.
		s := *u
		sep := "&"
		if s.RawQuery == "" {
			sep = ""
		}
		withSecret := s.RawQuery + sep + "access_token=" + url.QueryEscape(secret)
		withOther := s.RawQuery + sep + "access_token=" + url.QueryEscape(secret+"x")
		s.RawQuery = withSecret
		a, err := newKeyedRequest(&up, http.MethodGet, &s, http.Header{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.RawQuery = withOther
		b, err := newKeyedRequest(&up, http.MethodGet, &s, http.Header{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if a.base != b.base {
			t.Fatalf("the value of an ignored parameter changed the key of %q", withSecret)
		}
		if a.storedURL != b.storedURL {
			t.Fatalf("the value of an ignored parameter shows in the stored URL: %q vs %q", a.storedURL, b.storedURL)
		}
		_, storedQ, _ = strings.Cut(a.storedURL, "?")
		checkRedacted(t, storedQ, p)
	})
}

// fuzzUpstreams are the bases target joins paths onto: with and without a
// path prefix, with a trailing slash, with a port.
var fuzzUpstreams = []*url.URL{
	{Scheme: "http", Host: "upstream.test"},
	{Scheme: "https", Host: "upstream.test:8443", Path: "/api/v1"},
	{Scheme: "http", Host: "127.0.0.1:9", Path: "/prefix/"},
}

// target, for any escaped path after /fetch/ and any query: the URL it
// builds is on the upstream's scheme and host, and the path an upstream
// sees, even one that decodes %2F and treats '\' as '/' before resolving
// dot segments, stays below the upstream's path prefix.
func FuzzTarget(f *testing.F) {
	for _, s := range []string{
		"/fetch/demo/get", "/fetch/demo/../../etc/passwd", "/fetch/demo/%2e%2e/%2e%2e/etc/passwd",
		"/fetch/demo/a%2f..%2f..%2fb", "/fetch/demo/%252e%252e/x", "/fetch/demo/..\\..\\x",
		"/fetch/demo/a%5c..%5c..%5cb", "/fetch/demo/%00", "/fetch/demo//evil.example/x",
		"/fetch/demo/@evil.example", "/fetch/demo/http://evil.example/", "/fetch/demo/%40evil.example",
		"/fetch/demo/.%2e/x", "/fetch/demo/%2E%2E", "/fetch/demo/a/./b", "/fetch/demo",
		"/fetch/demo/?x#y", "/fetch/demo/%zz", "/fetch//x", "/fetch/demo/%C0%AE%C0%AE/x",
	} {
		f.Add(s, "a=1", uint8(0))
	}
	f.Fuzz(func(t *testing.T, escaped, rawQuery string, which uint8) {
		if _, err := url.ParseRequestURI(escaped + "?" + rawQuery); err != nil {
			return // net/http and the fast lane answer 400 before the gateway
		}
		name, rest, ok := splitFetchPath(escaped)
		if !ok {
			if strings.HasPrefix(escaped, "/fetch/") {
				t.Fatalf("splitFetchPath(%q) refused a /fetch/ path", escaped)
			}
			return
		}
		if strings.Contains(name, "/") {
			t.Fatalf("splitFetchPath(%q): name %q holds a slash", escaped, name)
		}
		base := fuzzUpstreams[int(which)%len(fuzzUpstreams)]
		up := &upstream{Upstream: Upstream{Name: "demo", URL: base}}
		got, err := up.target(rest, rawQuery)
		if err != nil {
			return
		}
		if got.Scheme != base.Scheme || got.Host != base.Host || got.User != nil {
			t.Fatalf("target(%q) = %q: left %s://%s", rest, got, base.Scheme, base.Host)
		}
		// What goes on the wire, parsed again as the upstream would.
		wire, err := url.ParseRequestURI(got.RequestURI())
		if err != nil {
			t.Fatalf("target(%q) = %q: request URI %q does not parse: %v", rest, got, got.RequestURI(), err)
		}
		if wire.Host != "" {
			t.Fatalf("target(%q): request URI %q names a host", rest, got.RequestURI())
		}
		prefix := strings.TrimSuffix(base.EscapedPath(), "/")
		dec, err := url.PathUnescape(wire.EscapedPath())
		if err != nil {
			t.Fatalf("target(%q): path %q does not decode: %v", rest, wire.EscapedPath(), err)
		}
		cleaned := path.Clean(strings.ReplaceAll(dec, `\`, "/"))
		if prefix != "" && cleaned != prefix && !strings.HasPrefix(cleaned, prefix+"/") {
			t.Fatalf("target(%q) = %q: the upstream sees %q, outside its prefix %q", rest, got, cleaned, prefix)
		}
		if strings.ContainsRune(dec, 0) {
			t.Fatalf("target(%q) = %q: a NUL byte reaches the upstream", rest, got)
		}
	})
}
