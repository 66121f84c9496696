package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
)

// whoami answers with the credentials it was sent, so a response served to
// the wrong user shows it. Its responses allow shared caching in both
// modes (public), so only the key keeps users apart.
func whoami(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=600")
	fmt.Fprintf(w, "auth=%q cookie=%q proxy=%q", r.Header.Get("Authorization"), r.Header.Get("Cookie"), r.Header.Get("Proxy-Authorization"))
}

// Two users with different credentials never see each other's response,
// whatever ignored_parameters says, through the fast lane (a memory
// backend: its hits are answered from Lookup) and without it (SQLite).
func TestCredentialsNeverShared(t *testing.T) {
	cases := []struct {
		name   string
		header string // the credential header the users send
		mut    func(*cache.Policy)
	}{
		{"default", "Authorization", nil},
		{"Authorization ignored", "Authorization", func(p *cache.Policy) { p.IgnoredParameters = []string{"Authorization"} }},
		{"authorization ignored in lower case", "Authorization", func(p *cache.Policy) { p.IgnoredParameters = []string{"authorization"} }},
		{"Cookie ignored", "Cookie", func(p *cache.Policy) { p.IgnoredParameters = []string{"Cookie"} }},
		{"Proxy-Authorization ignored", "Proxy-Authorization", func(p *cache.Policy) { p.IgnoredParameters = []string{"PROXY-AUTHORIZATION"} }},
		{"Authorization matched and ignored", "Authorization", func(p *cache.Policy) {
			p.MatchHeaders = []string{"Authorization"}
			p.IgnoredParameters = []string{"Authorization"}
		}},
		{"rfc9111, Authorization ignored", "Authorization", func(p *cache.Policy) {
			p.Mode = cache.ModeRFC9111
			p.IgnoredParameters = []string{"Authorization"}
		}},
	}
	backends := []struct {
		name string
		open func(t *testing.T) cache.Backend
		lane bool // hits are the fast lane's
	}{
		{"memory", func(*testing.T) cache.Backend { return memory.New(0) }, true},
		{"sqlite", func(t *testing.T) cache.Backend { return testBackend(t) }, false},
	}
	for _, tc := range cases {
		for _, b := range backends {
			t.Run(tc.name+"/"+b.name, func(t *testing.T) {
				mut := tc.mut
				if mut == nil {
					mut = func(*cache.Policy) {}
				}
				e := newEnv(t, policy(mut), http.HandlerFunc(whoami), b.open(t))
				alice, bob := "secret-of-alice", "secret-of-bob"
				if tc.header == "Cookie" {
					alice, bob = "sid=alice", "sid=bob"
				}
				want := func(r result, who string) {
					t.Helper()
					// Proxy-Authorization is hop-by-hop: the upstream never
					// sees it, and X-Cache alone shows the users apart.
					if tc.header != "Proxy-Authorization" && !strings.Contains(r.body, who) {
						t.Fatalf("answer %q (X-Cache %s), want %s's", r.body, r.xcache(), who)
					}
				}
				want(e.get("/me", "MISS", tc.header, alice), alice)
				want(e.get("/me", "MISS", tc.header, bob), bob)
				before := e.lane.Answered()
				want(e.get("/me", "HIT", tc.header, alice), alice)
				want(e.get("/me", "HIT", tc.header, bob), bob)
				if r := e.get("/me", "MISS"); strings.Contains(r.body, "secret") || strings.Contains(r.body, "sid=") {
					t.Fatalf("a request without credentials got %q", r.body)
				}
				if got, lane := e.lane.Answered()-before, int64(0); b.lane {
					lane = 2
					if got != lane {
						t.Errorf("the fast lane answered %d of the hits, want %d", got, lane)
					}
				}
				for _, en := range e.entries() {
					blob, _ := json.Marshal(struct {
						URL string
						H   http.Header
						R   http.Header
					}{en.URL, en.Header, en.RequestHeader})
					if bytes.Contains(blob, []byte("alice")) || bytes.Contains(blob, []byte("bob")) {
						t.Errorf("a credential is stored in the clear: %s", blob)
					}
				}
			})
		}
	}
}

// A response that varies on a credential is a hit for the same credential
// and never for another: the credential in the key settles what the
// redacted stored value cannot.
func TestVaryOnCredential(t *testing.T) {
	for _, h := range []string{"Authorization", "Cookie"} {
		t.Run(h, func(t *testing.T) {
			up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Vary", h)
				whoami(w, r)
			})
			e := newEnv(t, policy(), up, memory.New(0))
			e.get("/me", "MISS", h, "sid=alice")
			if r := e.get("/me", "HIT", h, "sid=alice"); !strings.Contains(r.body, "alice") {
				t.Fatalf("alice got %q", r.body)
			}
			if r := e.get("/me", "MISS", h, "sid=bob"); !strings.Contains(r.body, "bob") {
				t.Fatalf("bob got %q", r.body)
			}
			e.get("/me", "MISS")
			e.get("/me", "HIT")
			for _, en := range e.entries() {
				if v := en.RequestHeader.Get(h); v != "" && v != gateway.Redacted {
					t.Errorf("stored %s = %q", h, v)
				}
			}
		})
	}
}

// match_headers cannot put cachegate's own headers, the token among them,
// into the key or the store.
func TestMatchHeadersNeverKeepTheToken(t *testing.T) {
	const token = "the-admin-token"
	e := newEnvOpts(t, gateway.Options{AdminToken: token}, policy(func(p *cache.Policy) {
		p.MatchHeaders = []string{cache.TokenHeader, "X-Cachegate-Expire-After"}
	}), nil, nil)
	e.get("/get", "MISS", cache.TokenHeader, token)
	e.get("/get", "HIT")
	for _, en := range e.entries() {
		if len(en.RequestHeader) > 0 {
			t.Errorf("stored request headers %v", en.RequestHeader)
		}
	}
}

// share_credentialed_responses is the explicit way to have listed
// credentials dropped from the key.
func TestShareCredentialedResponses(t *testing.T) {
	e := newEnv(t, policy(func(p *cache.Policy) {
		p.IgnoredParameters = []string{"authorization"}
		p.ShareCredentialedResponses = true
	}), http.HandlerFunc(whoami), memory.New(0))
	e.get("/me", "MISS", "Authorization", "alice")
	if r := e.get("/me", "HIT", "Authorization", "bob"); !strings.Contains(r.body, "alice") {
		t.Fatalf("bob got %q, want the shared entry", r.body)
	}
	// A credential that is not listed still keys.
	e.get("/me", "MISS", "Cookie", "sid=bob")
}

// Ignored parameters are redacted and left out of the key whatever their
// case, in the query, form and JSON bodies, and headers.
func TestIgnoredParametersMatchAnyCase(t *testing.T) {
	fixed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	e := newEnv(t, policy(func(p *cache.Policy) {
		p.IgnoredParameters = []string{"api_key", "token", "x-api-key"}
		p.MatchHeaders = []string{"X-Api-Key", "Authorization"}
		p.AllowableMethods = []string{"GET", "HEAD", "POST"}
	}), fixed, nil)

	e.get("/q?API_KEY=first-secret&q=1", "MISS", "Authorization", "Bearer auth-secret", "X-API-KEY", "header-secret")
	e.get("/q?api_key=second-secret&q=1", "HIT", "Authorization", "Bearer auth-secret", "X-Api-Key", "other")

	post := func(path, ct, body, want string) {
		t.Helper()
		r := e.doBody("POST", path, strings.NewReader(body), "Content-Type", ct)
		if r.xcache() != want {
			t.Fatalf("POST %s %s: X-Cache %s, want %s", path, body, r.xcache(), want)
		}
	}
	post("/json", "application/json", `{"Token":"json-secret","q":1}`, "MISS")
	post("/json", "application/json", `{"TOKEN":"other","q":1}`, "HIT")
	post("/json", "application/json", `{"token":"other","q":2}`, "MISS")
	post("/form", "application/x-www-form-urlencoded", "TOKEN=form-secret&q=1", "MISS")
	post("/form", "application/x-www-form-urlencoded", "Token=other&q=1", "HIT")

	var q *cache.Entry
	for _, en := range e.entries() {
		blob, _ := json.Marshal(struct {
			URL string
			R   http.Header
		}{en.URL, en.RequestHeader})
		if bytes.Contains(blob, []byte("secret")) {
			t.Errorf("a secret is stored: %s", blob)
		}
		if strings.Contains(en.URL, "/q?") {
			q = en
		}
	}
	if q == nil {
		t.Fatal("the GET was not stored")
	}
	if !strings.Contains(q.URL, "API_KEY=REDACTED") {
		t.Errorf("stored URL %q, want API_KEY=REDACTED", q.URL)
	}
	for _, h := range []string{"Authorization", "X-Api-Key"} {
		if got := q.RequestHeader.Get(h); got != gateway.Redacted {
			t.Errorf("stored %s = %q, want %s", h, got, gateway.Redacted)
		}
	}
}

// syncBuffer is a log destination that the gateway may write to from its
// goroutines while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A credential in ignored_parameters does not do what the list asks, so
// the operator is told at startup, naming the field; the explicit opt-in
// silences it.
func TestCredentialInIgnoredParametersWarns(t *testing.T) {
	cases := []struct {
		name    string
		ignored []string
		share   bool
		warn    string // "" for no warning
	}{
		{"Authorization", []string{"access_token", "Authorization"}, false, "Authorization is a credential"},
		{"cookie in lower case", []string{"cookie"}, false, "cookie is a credential"},
		{"opted in", []string{"Authorization"}, true, ""},
		{"no credential", []string{"access_token"}, false, ""},
	}
	u, _ := url.Parse("http://upstream.example")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf syncBuffer
			p := policy(func(p *cache.Policy) { p.IgnoredParameters, p.ShareCredentialedResponses = tc.ignored, tc.share })
			g, err := gateway.New(gateway.Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))},
				gateway.Upstream{Name: "github", URL: u, Policy: p, Backend: memory.New(0)})
			if err != nil {
				t.Fatal(err)
			}
			g.Close()
			got := buf.String()
			if tc.warn == "" {
				if strings.Contains(got, "WARN") {
					t.Fatalf("warned: %s", got)
				}
				return
			}
			for _, want := range []string{"level=WARN", "field=upstreams.github.ignored_parameters", tc.warn, "share_credentialed_responses"} {
				if !strings.Contains(got, want) {
					t.Errorf("log %q lacks %q", got, want)
				}
			}
		})
	}
}

// Responses marked personal are not stored in a shared cache, in either
// mode; private_cache lets private ones be. A response that sets a cookie
// is stored without it in requests-cache mode and not at all in rfc9111
// mode; the cookie only ever reaches the client that caused the fetch.
func TestPersonalResponsesNotShared(t *testing.T) {
	cases := []struct {
		name   string
		mut    func(*cache.Policy)
		query  string // httpbin /response-headers sets these response headers
		stored bool
		detail string // in Cache-Status when not stored; in Reason when stored
	}{
		{"no-store", nil, "Cache-Control=no-store", false, `detail="Cache-Control: no-store"`},
		{"no-store with cache_control", func(p *cache.Policy) { p.CacheControl = true }, "Cache-Control=no-store", false, `detail="Cache-Control: no-store"`},
		{"no-store beats urls_expire_after", func(p *cache.Policy) { p.URLsExpireAfter = []cache.URLRule{{Pattern: "*", Expire: cache.NeverExpire}} }, "Cache-Control=no-store", false, `detail="Cache-Control: no-store"`},
		{"rfc9111 no-store", rfc, "Cache-Control=no-store,max-age=60", false, `detail="Cache-Control: no-store"`},
		{"private", nil, "Cache-Control=private", false, `detail="Cache-Control: private"`},
		{"private with max-age and cache_control", func(p *cache.Policy) { p.CacheControl = true }, "Cache-Control=private,max-age=60", false, `detail="Cache-Control: private"`},
		{"private in a private cache", func(p *cache.Policy) { p.PrivateCache = true }, "Cache-Control=private", true, "expire_after"},
		{"rfc9111 private", rfc, "Cache-Control=private,max-age=60", false, `detail="Cache-Control: private"`},
		{"rfc9111 private in a private cache", func(p *cache.Policy) { rfc(p); p.PrivateCache = true }, "Cache-Control=private,max-age=60", true, "max-age"},
		{"Set-Cookie", nil, "Set-Cookie=sid%3Dalice", true, "Set-Cookie went only to the client"},
		{"Set-Cookie named private", nil, "Set-Cookie=sid%3Dalice&Cache-Control=private%3D%22Set-Cookie%22", true, "Set-Cookie went only to the client"},
		{"rfc9111 Set-Cookie", rfc, "Set-Cookie=sid%3Dalice&Cache-Control=max-age%3D60", false, `detail="Set-Cookie"`},
		{"rfc9111 Set-Cookie named private", rfc, "Set-Cookie=sid%3Dalice&Cache-Control=max-age%3D60,private%3D%22Set-Cookie%22", true, "Set-Cookie went only to the client"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mut := tc.mut
			if mut == nil {
				mut = func(*cache.Policy) {}
			}
			e := newEnv(t, policy(mut), nil, memory.New(0))
			path := "/response-headers?" + tc.query
			first := e.get(path, "MISS")
			if strings.Contains(tc.query, "Set-Cookie") && first.header.Get("Set-Cookie") != "sid=alice" {
				t.Errorf("the client that caused the fetch got Set-Cookie %q, want its cookie", first.header.Get("Set-Cookie"))
			}
			status := first.header.Get("Cache-Status")
			if !tc.stored {
				if strings.Contains(status, "stored") || !strings.Contains(status, tc.detail) {
					t.Fatalf("Cache-Status %q, want not stored with %s", status, tc.detail)
				}
				if n := len(e.entries()); n != 0 {
					t.Fatalf("%d entries stored", n)
				}
				e.get(path, "MISS")
				return
			}
			if !strings.Contains(status, "stored") {
				t.Fatalf("Cache-Status %q, want stored", status)
			}
			second := e.get(path, "HIT")
			if v := second.header.Values("Set-Cookie"); len(v) > 0 {
				t.Errorf("another client got Set-Cookie %q", v)
			}
			es := e.entries()
			if len(es) != 1 {
				t.Fatalf("%d entries, want 1", len(es))
			}
			if v := es[0].Header.Values("Set-Cookie"); len(v) > 0 {
				t.Errorf("Set-Cookie stored: %q", v)
			}
			if !strings.Contains(es[0].Reason, tc.detail) {
				t.Errorf("Reason %q, want it to mention %q", es[0].Reason, tc.detail)
			}
		})
	}
}

// Explain says why a URL's last response was not stored, where a guess
// from a response without caching headers would say it would be.
func TestExplainSaysWhyNotStored(t *testing.T) {
	e := newEnv(t, policy(), nil, nil)
	ctx := context.Background()
	const path = "/response-headers?Cache-Control=private"
	x, err := e.gw.Explain(ctx, "up", path, "GET", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !x.Store || x.LastNotStored != nil {
		t.Fatalf("before any fetch: would_store %v, last_not_stored %+v; want the guess (stored)", x.Store, x.LastNotStored)
	}
	e.get(path, "MISS")
	x, err = e.gw.Explain(ctx, "up", path, "GET", nil)
	if err != nil {
		t.Fatal(err)
	}
	if x.Store || x.Rule != "Cache-Control: private" || !strings.Contains(x.Reason, "private_cache") || !strings.Contains(x.Assumed, "last response") {
		t.Fatalf("after a private response: %+v", x)
	}
	if x.LastNotStored == nil || x.LastNotStored.Status != http.StatusOK || x.LastNotStored.Rule != "Cache-Control: private" {
		t.Fatalf("last_not_stored %+v", x.LastNotStored)
	}
}

// The per-request control headers rewrite policy every client shares: an
// anonymous client's are ignored, unless the upstream sets
// client_overrides or the request carries the admin token.
func TestClientOverrides(t *testing.T) {
	const token = "s3cret-admin-token"
	cases := []struct {
		name      string
		overrides bool
		token     string   // the gateway's admin token
		header    []string // sent with the control headers
		honoured  bool
	}{
		{"anonymous", false, token, nil, false},
		{"anonymous, no token configured", false, "", nil, false},
		{"client_overrides", true, "", nil, true},
		{"admin token", false, token, []string{cache.TokenHeader, token}, true},
	}
	for _, tc := range cases {
		for _, b := range []string{"memory", "sqlite"} {
			t.Run(tc.name+"/"+b, func(t *testing.T) {
				backend := testBackend(t)
				if b == "memory" {
					backend = memory.New(0)
				}
				e := newEnvOpts(t, gateway.Options{AdminToken: tc.token}, policy(func(p *cache.Policy) { p.ClientOverrides = tc.overrides }), nil, backend)
				with := func(h ...string) []string { return append(append([]string{}, tc.header...), h...) }

				e.get("/get", "MISS", with(cache.ExpireAfterHeader, "never")...)
				es := e.entries()
				if len(es) != 1 {
					t.Fatalf("%d entries", len(es))
				}
				if got := es[0].Never(); got != tc.honoured {
					t.Errorf("expire-after never: entry never expires = %v, want %v (reason %q)", got, tc.honoured, es[0].Reason)
				}
				want := "HIT"
				if tc.honoured {
					want = "MISS"
				}
				e.get("/get", want, with(cache.ForceRefreshHeader, "true")...)

				// A value the gateway would refuse is only an error when
				// it counts.
				r := e.do("GET", "/get?bad", with(cache.ExpireAfterHeader, "soon")...)
				if wantStatus := map[bool]int{true: 400, false: 200}[tc.honoured]; r.status != wantStatus {
					t.Errorf("bad expiry: status %d, want %d (%s)", r.status, wantStatus, r.body)
				}
			})
		}
	}
}

// A token that is not the admin token is an error, not silently a
// request without overrides, on a miss and on a hit the fast lane holds.
func TestWrongTokenIs403(t *testing.T) {
	for _, configured := range []string{"right-token", ""} {
		t.Run("configured "+configured, func(t *testing.T) {
			e := newEnvOpts(t, gateway.Options{AdminToken: configured}, policy(), nil, memory.New(0))
			e.get("/get", "MISS")
			for _, path := range []string{"/get", "/get?miss"} {
				r := e.do("GET", path, cache.TokenHeader, "wrong-token")
				var body struct{ Error, Code string }
				if err := json.Unmarshal([]byte(r.body), &body); err != nil || r.status != http.StatusForbidden || body.Code != "bad_token" {
					t.Fatalf("GET %s with a wrong token: %d %s", path, r.status, r.body)
				}
				if strings.Contains(r.body, "right-token") || strings.Contains(r.body, "wrong-token") {
					t.Fatalf("the error shows a token: %s", r.body)
				}
			}
			e.get("/get", "HIT")
		})
	}
}

// cachegate's own headers, the token above all, never reach the upstream,
// on a cacheable fetch nor on a pass-through.
func TestControlHeadersNeverForwarded(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		for k := range r.Header {
			if strings.HasPrefix(strings.ToLower(k), "x-cachegate") {
				seen = append(seen, k)
			}
		}
		mu.Unlock()
		fmt.Fprint(w, "ok")
	})
	const token = "tok"
	e := newEnvOpts(t, gateway.Options{AdminToken: token}, policy(), up, nil)
	h := []string{cache.TokenHeader, token, "x-cachegate-expire-after", "1m", cache.ForceRefreshHeader, "true", "X-Cachegate-Other", "1"}
	e.get("/a", "MISS", h...)
	e.get("/a", "MISS", h...) // forced
	if r := e.doBody("POST", "/a", strings.NewReader("x"), h...); r.xcache() != "BYPASS" {
		t.Fatalf("POST: %s", r.xcache())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) > 0 {
		t.Fatalf("the upstream saw %v", seen)
	}
}

// A 304 that sets a cookie updates the stored entry's headers but never
// with its cookies, in a revalidation on the way to a client and in an
// admin revalidation alike: the next client must not get them.
func TestNotModifiedCookiesAreNotStored(t *testing.T) {
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Cache-Control", "max-age=60")
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.Header().Set("Set-Cookie", "sid=from-304")
			w.Header().Set("Set-Cookie2", "sid2=from-304")
			w.Header().Set("X-Refreshed", "yes")
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write([]byte("body"))
	})
	e := newEnv(t, policy(func(p *cache.Policy) { p.CacheControl = true }), upstream, nil)
	e.get("/c", "MISS")
	e.clock.Advance(2 * time.Minute)
	r := e.get("/c", "REVALIDATED")
	if r.body != "body" {
		t.Fatalf("revalidated body %q", r.body)
	}
	check := func(when string) {
		t.Helper()
		r := e.get("/c", "HIT")
		if r.header.Get("X-Refreshed") != "yes" {
			t.Errorf("%s: the 304's other fields were not stored", when)
		}
		for _, name := range cache.SetCookieHeaders {
			if got := r.header.Get(name); got != "" {
				t.Errorf("%s: another client got the 304's %s %q", when, name, got)
			}
		}
		en := e.entries()
		if len(en) != 1 {
			t.Fatalf("%d entries", len(en))
		}
		stored, _, err := e.backend.Get(context.Background(), en[0].Key)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range cache.SetCookieHeaders {
			if got := stored.Header.Get(name); got != "" {
				t.Errorf("%s: the entry stores the 304's %s %q", when, name, got)
			}
		}
	}
	check("after a revalidation for a client")
	e.clock.Advance(2 * time.Minute)
	key := e.entries()[0].Key
	if _, err := e.gw.Revalidate(context.Background(), e.backend, key); err != nil {
		t.Fatal(err)
	}
	check("after an admin revalidation")
}
