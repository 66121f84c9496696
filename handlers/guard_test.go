package handlers_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/handlers"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// loopbackRequest is a request as a client on this machine sends it to a
// cachegate on 127.0.0.1:8080 (httptest.NewRequest's defaults, Host
// example.com from 192.0.2.1, are a remote client at a foreign name).
// header holds name, value pairs.
func loopbackRequest(method, target string, body io.Reader, header ...string) *http.Request {
	r := httptest.NewRequest(method, target, body)
	r.Host = "127.0.0.1:8080"
	r.RemoteAddr = "127.0.0.1:50000"
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

// guardClock is a settable clock for sessions and the sign-in limit.
type guardClock struct {
	mu sync.Mutex // protects t
	t  time.Time
}

func (c *guardClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *guardClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// guarded is an API over a memory backend holding one entry, mounted with
// the sign-in routes, the profiler and a small page of the test's behind
// protectPages (GET /page, /signin and /ws, POST /page).
type guarded struct {
	api     *handlers.API
	router  chi.Router
	backend cache.Backend
	clock   *guardClock
	key     string // the stored entry
}

func newGuarded(tb testing.TB, opts handlers.Options) *guarded {
	tb.Helper()
	gw, err := gateway.New(gateway.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { gw.Close() })
	g := &guarded{backend: memory.New(1 << 20), clock: &guardClock{t: cachetest.T0}, key: cache.MakeKey("guarded")}
	cachetest.MustPut(tb, g.backend, cachetest.NewEntry(g.key))
	opts.Backends = map[string]cache.Backend{"default": g.backend}
	opts.Now = g.clock.Now
	g.api = handlers.NewAPI(nil, gw, opts)
	tb.Cleanup(g.api.Close)
	page := g.api.GuardPages(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "page "+r.Method)
	}))
	g.router = chi.NewRouter()
	g.api.Mount(g.router)
	g.api.MountSignIn(g.router)
	g.router.Mount("/debug", g.api.Protect(middleware.Profiler())) // as web mounts it
	g.router.Method(http.MethodGet, "/page", page)
	g.router.Method(http.MethodPost, "/page", page)
	g.router.Method(http.MethodGet, "/signin", page)
	g.router.Method(http.MethodGet, "/ws", page)
	return g
}

func (g *guarded) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	g.router.ServeHTTP(w, r)
	return w
}

// stored reports whether the entry is still there.
func (g *guarded) stored(tb testing.TB) bool {
	tb.Helper()
	_, ok, err := g.backend.Get(context.Background(), g.key)
	if err != nil {
		tb.Fatal(err)
	}
	return ok
}

// wantGuardError checks a JSON error answer's status, code and message.
func wantGuardError(tb testing.TB, w *httptest.ResponseRecorder, status int, code string, contains ...string) {
	tb.Helper()
	var e struct{ Error, Code string }
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		tb.Fatalf("status %d, body %q is not JSON: %v", w.Code, w.Body, err)
	}
	if w.Code != status || e.Code != code {
		tb.Fatalf("got %d %q (%s), want %d %q", w.Code, e.Code, e.Error, status, code)
	}
	for _, s := range contains {
		if !strings.Contains(e.Error, s) {
			tb.Errorf("error %q does not mention %q", e.Error, s)
		}
	}
}

// TestAPIBodyTypes: a page on another site can POST text/plain, forms and
// multipart without asking the browser first; none of them reaches a
// handler, and the entry they would delete survives.
func TestAPIBodyTypes(t *testing.T) {
	const all = `{"all": true}`
	tests := []struct {
		name, method, path, ctype, body string
		want                            int // 0: the 415
	}{
		{name: "text/plain", method: "POST", path: "/api/delete", ctype: "text/plain", body: all},
		{name: "text/plain with charset", method: "POST", path: "/api/delete", ctype: "text/plain;charset=UTF-8", body: all},
		{name: "form", method: "POST", path: "/api/delete", ctype: "application/x-www-form-urlencoded", body: all},
		{name: "multipart", method: "POST", path: "/api/delete", ctype: "multipart/form-data; boundary=x", body: "--x\r\n\r\n" + all + "\r\n--x--\r\n"},
		{name: "no type with a body", method: "POST", path: "/api/delete", body: all},
		{name: "an empty form", method: "POST", path: "/api/purge-expired", ctype: "application/x-www-form-urlencoded"},
		{name: "ndjson is for imports only", method: "POST", path: "/api/delete", ctype: "application/x-ndjson", body: all},
		{name: "bad type", method: "POST", path: "/api/delete", ctype: "json", body: all},
		{name: "text/plain delete", method: "DELETE", path: "/api/entries/KEY", ctype: "text/plain", body: "x"},
		{name: "text/plain import", method: "POST", path: "/api/import", ctype: "text/plain", body: "{}\n"},
		{name: "json", method: "POST", path: "/api/delete", ctype: "application/json", body: all, want: http.StatusOK},
		{name: "json with charset", method: "POST", path: "/api/delete", ctype: "application/json; charset=utf-8", body: all, want: http.StatusOK},
		{name: "bodiless POST", method: "POST", path: "/api/purge-expired", want: http.StatusOK},
		{name: "bodiless DELETE", method: "DELETE", path: "/api/entries/KEY", want: http.StatusOK},
		{name: "ndjson import", method: "POST", path: "/api/import", ctype: "application/x-ndjson", body: "not an export\n", want: http.StatusBadRequest},
		{name: "json import", method: "POST", path: "/api/import", ctype: "application/json", body: "not an export\n", want: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuarded(t, handlers.Options{})
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			r := loopbackRequest(tt.method, strings.Replace(tt.path, "KEY", g.key, 1), body)
			if tt.ctype != "" {
				r.Header.Set("Content-Type", tt.ctype)
			}
			w := g.serve(r)
			if tt.want != 0 {
				if w.Code != tt.want {
					t.Fatalf("got %d %s, want %d", w.Code, w.Body, tt.want)
				}
				return
			}
			want := "curl --json"
			if tt.path == "/api/import" {
				want = "application/x-ndjson"
			}
			wantGuardError(t, w, http.StatusUnsupportedMediaType, "unsupported_media_type", "application/json", want)
			if !g.stored(t) {
				t.Fatal("a refused request deleted the entry")
			}
		})
	}
}

// TestAdminCrossSite: the admin side answers its own pages and clients
// that are no page at all; a request another site's page sent is refused
// before it is authenticated or read.
func TestAdminCrossSite(t *testing.T) {
	tests := []struct {
		name   string
		method string
		header []string
		tls    bool
		ok     bool
	}{
		{name: "curl", method: "GET", ok: true},
		{name: "same-origin", method: "GET", header: []string{"Sec-Fetch-Site", "same-origin"}, ok: true},
		{name: "typed address", method: "GET", header: []string{"Sec-Fetch-Site", "none"}, ok: true},
		{name: "own origin", method: "POST", header: []string{"Origin", "http://127.0.0.1:8080"}, ok: true},
		{name: "own origin, any case", method: "POST", header: []string{"Origin", "HTTP://127.0.0.1:8080"}, ok: true},
		{name: "own origin over TLS", method: "POST", header: []string{"Origin", "https://127.0.0.1:8080"}, tls: true, ok: true},
		{name: "cross-site GET", method: "GET", header: []string{"Sec-Fetch-Site", "cross-site"}},
		{name: "same-site GET", method: "GET", header: []string{"Sec-Fetch-Site", "same-site"}},
		{name: "cross-site POST", method: "POST", header: []string{"Sec-Fetch-Site", "cross-site"}},
		{name: "link from another site", method: "GET", header: []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document"}, ok: true},
		{name: "frame on another site", method: "GET", header: []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "iframe"}},
		{name: "form on another site", method: "POST", header: []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document"}},
		{name: "foreign origin POST", method: "POST", header: []string{"Origin", "http://evil.example"}},
		{name: "foreign origin GET", method: "GET", header: []string{"Origin", "http://evil.example"}},
		{name: "null origin", method: "POST", header: []string{"Origin", "null"}},
		{name: "other port", method: "POST", header: []string{"Origin", "http://127.0.0.1:8081"}},
		{name: "other scheme", method: "POST", header: []string{"Origin", "https://127.0.0.1:8080"}},
		{name: "same-origin but foreign Origin", method: "POST", header: []string{"Sec-Fetch-Site", "same-origin", "Origin", "http://localhost:8080"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuarded(t, handlers.Options{Token: "s3cret"})
			path := "/api/stats"
			if tt.method == "POST" {
				path = "/api/purge-expired"
			}
			r := loopbackRequest(tt.method, path, nil, append(tt.header, "Authorization", "Bearer s3cret")...)
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			w := g.serve(r)
			if tt.ok {
				if w.Code != http.StatusOK {
					t.Fatalf("got %d %s, want 200", w.Code, w.Body)
				}
				return
			}
			wantGuardError(t, w, http.StatusForbidden, "cross_site", "other sites")
			// The profiler follows the same rules.
			r = loopbackRequest("GET", "/debug/pprof/", nil, append(tt.header, "Authorization", "Bearer s3cret")...)
			if tt.method == "GET" {
				if w := g.serve(r); w.Code != http.StatusForbidden {
					t.Fatalf("profiler: got %d, want 403", w.Code)
				}
			}
		})
	}
}

// TestAdminHosts: DNS rebinding points a name the attacker controls at
// 127.0.0.1; the admin side answers only to names it is reachable under.
func TestAdminHosts(t *testing.T) {
	tests := []struct {
		host string
		ok   bool
	}{
		{"127.0.0.1:8080", true},
		{"127.0.0.1", true},
		{"[::1]:8080", true},
		{"10.0.0.5:8080", true},
		{"localhost:8080", true},
		{"LOCALHOST", true},
		{"localhost.:8080", true},
		{"app.localhost:8080", true},
		{"cache.internal:8080", true},
		{"Cache.Internal.", true},
		{"gw-1:8080", true}, // the listen address's host
		{"evil.example:8080", false},
		{"localhost.evil.example", false},
		{"evillocalhost", false},
		{"internal", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			g := newGuarded(t, handlers.Options{AdminHosts: []string{"cache.internal"}, ListenHost: "gw-1"})
			for _, path := range []string{"/api/stats", "/debug/pprof/"} {
				r := loopbackRequest("GET", path, nil)
				r.Host = tt.host
				w := g.serve(r)
				if tt.ok {
					if w.Code != http.StatusOK {
						t.Fatalf("%s: got %d %s, want 200", path, w.Code, w.Body)
					}
					continue
				}
				wantGuardError(t, w, http.StatusMisdirectedRequest, "unknown_host", "admin_hosts")
			}
			r := loopbackRequest("GET", "/page", nil)
			r.Host = tt.host
			if w := g.serve(r); tt.ok != (w.Code == http.StatusOK) {
				t.Fatalf("page: got %d %s", w.Code, w.Body)
			}
		})
	}
}

// TestAdminBehindProxy: a loopback listener behind a reverse proxy sees
// every client of the proxy as 127.0.0.1; the proxy's headers make the
// request remote unless the proxy is trusted, and then the client named
// by X-Forwarded-For is judged.
func TestAdminBehindProxy(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name    string
		token   string
		proxies []netip.Prefix
		peer    string
		header  []string
		want    int
	}{
		{name: "no proxy headers", want: 200},
		{name: "X-Forwarded-For from an untrusted proxy", header: []string{"X-Forwarded-For", "127.0.0.1"}, want: 403},
		{name: "X-Real-IP", header: []string{"X-Real-IP", "127.0.0.1"}, want: 403},
		{name: "Forwarded", header: []string{"Forwarded", "for=127.0.0.1"}, want: 403},
		{name: "a remote peer", peer: "192.0.2.1:4000", want: 403},
		{name: "trusted proxy, local client", proxies: trusted, header: []string{"X-Forwarded-For", "127.0.0.1"}, want: 200},
		{name: "trusted proxy, remote client", proxies: trusted, header: []string{"X-Forwarded-For", "203.0.113.5"}, want: 403},
		{name: "a spoofed left-most entry", proxies: trusted, header: []string{"X-Forwarded-For", "127.0.0.1, 203.0.113.5"}, want: 403},
		{name: "through two trusted proxies", proxies: trusted, header: []string{"X-Forwarded-For", "203.0.113.5, 10.1.1.1"}, want: 403},
		{name: "local behind two trusted proxies", proxies: trusted, header: []string{"X-Forwarded-For", "::1", "X-Forwarded-For", "10.1.1.1"}, want: 200},
		{name: "garbage entry", proxies: trusted, header: []string{"X-Forwarded-For", "unknown"}, want: 403},
		{name: "trusted Forwarded", proxies: trusted, header: []string{"Forwarded", `for="[::1]:1234";proto=http`}, want: 200},
		{name: "trusted X-Real-IP, remote", proxies: trusted, header: []string{"X-Real-IP", "203.0.113.5"}, want: 403},
		{name: "a remote peer claiming to be local", proxies: trusted, peer: "192.0.2.1:4000", header: []string{"X-Forwarded-For", "127.0.0.1"}, want: 403},
		{name: "token, untrusted proxy, no bearer", token: "t", header: []string{"X-Forwarded-For", "203.0.113.5"}, want: 401},
		{name: "token, untrusted proxy, bearer", token: "t", header: []string{"X-Forwarded-For", "203.0.113.5", "Authorization", "Bearer t"}, want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuarded(t, handlers.Options{Token: tt.token, TrustedProxies: tt.proxies})
			for _, path := range []string{"/api/stats", "/debug/pprof/"} {
				r := loopbackRequest("GET", path, nil, tt.header...)
				if tt.peer != "" {
					r.RemoteAddr = tt.peer
				}
				w := g.serve(r)
				if tt.want == 403 {
					wantGuardError(t, w, http.StatusForbidden, "admin_disabled", "-admin-token", "trusted_proxies")
					continue
				}
				if w.Code != tt.want {
					t.Fatalf("%s: got %d %s, want %d", path, w.Code, w.Body, tt.want)
				}
			}
		})
	}
}

// signIn posts the sign-in form from the address peer and returns the
// answer.
func (g *guarded) signIn(tb testing.TB, token, next string, header ...string) *httptest.ResponseRecorder {
	tb.Helper()
	csrf := g.api.GuardCSRFToken(loopbackRequest("GET", "/signin", nil))
	form := url.Values{"token": {token}, "next": {next}, "csrf_token": {csrf}}
	r := loopbackRequest("POST", "/signin", strings.NewReader(form.Encode()), header...)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return g.serve(r)
}

func guardSessionCookie(tb testing.TB, w *httptest.ResponseRecorder) *http.Cookie {
	tb.Helper()
	for _, c := range w.Result().Cookies() {
		if c.Name == "cachegate_session" {
			return c
		}
	}
	tb.Fatalf("no session cookie in %v", w.Header())
	return nil
}

func wantGuardRedirect(tb testing.TB, w *httptest.ResponseRecorder, location string) {
	tb.Helper()
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != location {
		tb.Fatalf("got %d to %q, want 303 to %q (%s)", w.Code, w.Header().Get("Location"), location, w.Body)
	}
}

// TestPagesNeedSignIn: with a token, a page visit without a session goes
// to /signin and comes back after it; other methods and /ws get 401.
func TestPagesNeedSignIn(t *testing.T) {
	g := newGuarded(t, handlers.Options{Token: "s3cret"})

	wantGuardRedirect(t, g.serve(loopbackRequest("GET", "/page?backend=a&x=1", nil)), "/signin?next=%2Fpage%3Fbackend%3Da%26x%3D1")
	for _, r := range []*http.Request{
		loopbackRequest("POST", "/page", nil),
		loopbackRequest("GET", "/ws", nil),
		loopbackRequest("GET", "/page", nil, "Upgrade", "websocket", "Connection", "Upgrade"),
	} {
		if w := g.serve(r); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "/signin") {
			t.Fatalf("%s %s without a session: %d %s", r.Method, r.URL, w.Code, w.Body)
		}
	}
	if w := g.serve(loopbackRequest("GET", "/signin?next=%2Fpage", nil)); w.Code != http.StatusOK {
		t.Fatalf("GET /signin without a session: %d", w.Code)
	}
	if in, required := g.api.GuardSignedIn(loopbackRequest("GET", "/page", nil)); in || !required {
		t.Fatalf("signedIn without a session = %v, %v; want false, true", in, required)
	}

	w := g.signIn(t, "s3cret", "/page?x=1")
	wantGuardRedirect(t, w, "/page?x=1")
	c := guardSessionCookie(t, w)
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure {
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/, not Secure over http", c)
	}
	if c.MaxAge != 12*60*60 {
		t.Fatalf("cookie MaxAge %d, want 12 h", c.MaxAge)
	}
	withCookie := func(r *http.Request) *http.Request { r.AddCookie(c); return r }
	if w := g.serve(withCookie(loopbackRequest("GET", "/page", nil))); w.Code != http.StatusOK {
		t.Fatalf("GET with a session: %d %s", w.Code, w.Body)
	}
	if in, required := g.api.GuardSignedIn(withCookie(loopbackRequest("GET", "/page", nil))); !in || !required {
		t.Fatalf("signedIn with a session = %v, %v; want true, true", in, required)
	}
	// The API takes the bearer token only.
	if w := g.serve(withCookie(loopbackRequest("GET", "/api/stats", nil))); w.Code != http.StatusUnauthorized {
		t.Fatalf("/api/ with a session cookie: %d", w.Code)
	}

	// 12 hours later the session is over.
	g.clock.Add(12*time.Hour - time.Second)
	if w := g.serve(withCookie(loopbackRequest("GET", "/page", nil))); w.Code != http.StatusOK {
		t.Fatalf("GET a second before expiry: %d", w.Code)
	}
	g.clock.Add(time.Second)
	wantGuardRedirect(t, g.serve(withCookie(loopbackRequest("GET", "/page", nil))), "/signin?next=%2Fpage")

	// A bearer token works on pages too, without a CSRF token: no other
	// site can make a browser send it.
	if w := g.serve(loopbackRequest("POST", "/page", nil, "Authorization", "Bearer s3cret")); w.Code != http.StatusOK {
		t.Fatalf("POST with a bearer token: %d %s", w.Code, w.Body)
	}
	if w := g.serve(loopbackRequest("GET", "/page", nil, "Authorization", "Bearer wrong")); w.Code != http.StatusSeeOther {
		t.Fatalf("GET with a wrong bearer token: %d", w.Code)
	}
}

// TestPageSessionCookie: the cookie is the expiry signed with the token,
// so any replica with the same token accepts it and nothing else does.
func TestPageSessionCookie(t *testing.T) {
	g := newGuarded(t, handlers.Options{Token: "s3cret"})
	c := guardSessionCookie(t, g.signIn(t, "s3cret", "/"))
	exp, sig, _ := strings.Cut(c.Value, ".")

	replica := newGuarded(t, handlers.Options{Token: "s3cret"})
	other := newGuarded(t, handlers.Options{Token: "another"})
	tests := []struct {
		name  string
		g     *guarded
		value string
		ok    bool
	}{
		{"the server that signed it", g, c.Value, true},
		{"a replica with the same token", replica, c.Value, true},
		{"a server with another token", other, c.Value, false},
		{"a later expiry", g, "9" + exp + "." + sig, false},
		{"no signature", g, exp, false},
		{"a bad signature", g, exp + "." + strings.Repeat("A", len(sig)), false},
		{"empty", g, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := loopbackRequest("GET", "/page", nil)
			r.AddCookie(&http.Cookie{Name: "cachegate_session", Value: tt.value})
			if w := tt.g.serve(r); (w.Code == http.StatusOK) != tt.ok {
				t.Fatalf("got %d, want ok=%v", w.Code, tt.ok)
			}
		})
	}
}

// TestPageCSRF: an unsafe page request needs the session's CSRF token and
// must come from the admin side's own pages.
func TestPageCSRF(t *testing.T) {
	g := newGuarded(t, handlers.Options{Token: "s3cret"})
	c := guardSessionCookie(t, g.signIn(t, "s3cret", "/"))
	signed := loopbackRequest("GET", "/page", nil)
	signed.AddCookie(c)
	csrf := g.api.GuardCSRFToken(signed)
	anonymous := g.api.GuardCSRFToken(loopbackRequest("GET", "/signin", nil))
	if csrf == anonymous || csrf == "" {
		t.Fatalf("the session's CSRF token %q is the one without a session", csrf)
	}
	form := func(token string) io.Reader { return strings.NewReader(url.Values{"csrf_token": {token}}.Encode()) }
	const formType = "application/x-www-form-urlencoded"
	tests := []struct {
		name   string
		body   io.Reader
		header []string
		ok     bool
	}{
		{name: "header", header: []string{"X-CSRF-Token", csrf}, ok: true},
		{name: "form field", body: form(csrf), header: []string{"Content-Type", formType}, ok: true},
		{name: "from its own page", body: form(csrf), header: []string{"Content-Type", formType, "Origin", "http://127.0.0.1:8080", "Sec-Fetch-Site", "same-origin"}, ok: true},
		{name: "none"},
		{name: "wrong", header: []string{"X-CSRF-Token", "x" + csrf}},
		{name: "the token of no session", body: form(anonymous), header: []string{"Content-Type", formType}},
		{name: "from another site", body: form(csrf), header: []string{"Content-Type", formType, "Origin", "http://evil.example"}},
		{name: "cross-site", header: []string{"X-CSRF-Token", csrf, "Sec-Fetch-Site", "cross-site"}},
		{name: "same-site", header: []string{"X-CSRF-Token", csrf, "Sec-Fetch-Site", "same-site"}},
		{name: "not from a page", header: []string{"X-CSRF-Token", csrf, "Sec-Fetch-Site", "none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := loopbackRequest("POST", "/page", tt.body, tt.header...)
			r.AddCookie(c)
			w := g.serve(r)
			if tt.ok {
				if w.Code != http.StatusOK || w.Body.String() != "page POST" {
					t.Fatalf("got %d %s, want the page", w.Code, w.Body)
				}
				return
			}
			if w.Code != http.StatusForbidden || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || !strings.Contains(w.Body.String(), `data-testid="error-title"`) {
				t.Fatalf("got %d %q %q, want 403 with a readable message", w.Code, w.Header().Get("Content-Type"), w.Body)
			}
		})
	}
}

// TestPagesOnLoopbackWithoutToken: no sign-in, but forms still need the
// process's CSRF token, and a proxied request is refused.
func TestPagesOnLoopbackWithoutToken(t *testing.T) {
	g := newGuarded(t, handlers.Options{})
	if w := g.serve(loopbackRequest("GET", "/page", nil)); w.Code != http.StatusOK {
		t.Fatalf("GET: %d", w.Code)
	}
	if in, required := g.api.GuardSignedIn(loopbackRequest("GET", "/page", nil)); in || required {
		t.Fatalf("signedIn = %v, %v; want false, false", in, required)
	}
	if w := g.serve(loopbackRequest("POST", "/page", nil)); w.Code != http.StatusForbidden {
		t.Fatalf("POST without a CSRF token: %d", w.Code)
	}
	csrf := g.api.GuardCSRFToken(loopbackRequest("GET", "/page", nil))
	if other := newGuarded(t, handlers.Options{}); other.api.GuardCSRFToken(loopbackRequest("GET", "/page", nil)) == csrf {
		t.Fatal("two processes share a CSRF token")
	}
	if w := g.serve(loopbackRequest("POST", "/page", nil, "X-CSRF-Token", csrf)); w.Code != http.StatusOK {
		t.Fatalf("POST with the CSRF token: %d %s", w.Code, w.Body)
	}
	w := g.serve(loopbackRequest("GET", "/page", nil, "X-Forwarded-For", "203.0.113.5"))
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "-admin-token") {
		t.Fatalf("a proxied GET: %d %s", w.Code, w.Body)
	}
	if _, required := g.api.GuardSignedIn(loopbackRequest("GET", "/page", nil, "X-Forwarded-For", "203.0.113.5")); !required {
		t.Fatal("a proxied request needs no token")
	}
	// Nothing to sign in to: the form goes on to next.
	wantGuardRedirect(t, g.signIn(t, "", "/page"), "/page")
}

// TestPageHeaders: every answer of a page, refusals included, carries the
// security headers.
func TestPageHeaders(t *testing.T) {
	g := newGuarded(t, handlers.Options{Token: "s3cret"})
	foreign := loopbackRequest("GET", "/page", nil)
	foreign.Host = "evil.example"
	for _, r := range []*http.Request{
		loopbackRequest("GET", "/page", nil),
		loopbackRequest("GET", "/page", nil, "Authorization", "Bearer s3cret"),
		loopbackRequest("POST", "/page", nil, "Authorization", "Bearer s3cret", "Origin", "http://evil.example"),
		loopbackRequest("GET", "/ws", nil),
		foreign,
	} {
		w := g.serve(r)
		h := w.Header()
		if !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self';") || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "same-origin" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s %s (%d): headers %v", r.Method, r.URL, w.Code, h)
		}
	}
	if w := g.serve(foreign); w.Code != http.StatusMisdirectedRequest {
		t.Fatalf("a page at a foreign host: %d", w.Code)
	}
}

// TestSignIn: where a sign-in sends the browser, and how failures are
// limited per client address.
func TestSignIn(t *testing.T) {
	t.Run("next", func(t *testing.T) {
		g := newGuarded(t, handlers.Options{Token: "s3cret"})
		for next, want := range map[string]string{
			"/entries?sort=size":          "/entries?sort=size",
			"":                            "/",
			"//evil.example/":             "/",
			"/\\evil.example":             "/",
			"https://evil.example/":       "/",
			"javascript:alert(1)":         "/",
			"entries":                     "/",
			"/ok\r\nSet-Cookie: x=1":      "/",
			"/%2F%2Fevil.example":         "/%2F%2Fevil.example",
			"/signin?error=invalid_token": "/signin?error=invalid_token",
		} {
			wantGuardRedirect(t, g.signIn(t, "s3cret", next), want)
		}
	})
	t.Run("TLS", func(t *testing.T) {
		g := newGuarded(t, handlers.Options{Token: "s3cret", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
		if c := guardSessionCookie(t, g.signIn(t, "s3cret", "/", "X-Forwarded-For", "127.0.0.1", "X-Forwarded-Proto", "https")); !c.Secure {
			t.Fatal("the cookie of a sign-in over https is not Secure")
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		g := newGuarded(t, handlers.Options{Token: "s3cret"})
		w := g.signIn(t, "s3cretx", "/page")
		wantGuardRedirect(t, w, "/signin?error=invalid_token&next=%2Fpage")
		if len(w.Result().Cookies()) != 0 {
			t.Fatal("a failed sign-in set a cookie")
		}
	})
	t.Run("without CSRF token", func(t *testing.T) {
		g := newGuarded(t, handlers.Options{Token: "s3cret"})
		r := loopbackRequest("POST", "/signin", strings.NewReader("token=s3cret"), "Content-Type", "application/x-www-form-urlencoded")
		if w := g.serve(r); w.Code != http.StatusForbidden {
			t.Fatalf("got %d, want 403", w.Code)
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		g := newGuarded(t, handlers.Options{Token: "s3cret", TrustedProxies: trusted})
		from := func(addr string) []string { return []string{"X-Forwarded-For", addr} }
		for i := 0; i < 5; i++ {
			wantGuardRedirect(t, g.signIn(t, "guess", "/", from("203.0.113.5")...), "/signin?error=invalid_token&next=%2F")
		}
		// The sixth try is refused even with the right token.
		wantGuardRedirect(t, g.signIn(t, "s3cret", "/", from("203.0.113.5")...), "/signin?error=rate_limited&next=%2F")
		// Another client of the same proxy is not.
		wantGuardRedirect(t, g.signIn(t, "s3cret", "/", from("203.0.113.6")...), "/")
		g.clock.Add(time.Minute)
		wantGuardRedirect(t, g.signIn(t, "s3cret", "/", from("203.0.113.5")...), "/")
	})
	t.Run("sign out", func(t *testing.T) {
		g := newGuarded(t, handlers.Options{Token: "s3cret"})
		c := guardSessionCookie(t, g.signIn(t, "s3cret", "/"))
		r := loopbackRequest("GET", "/page", nil)
		r.AddCookie(c)
		csrf := g.api.GuardCSRFToken(r)
		r = loopbackRequest("POST", "/signout", strings.NewReader("csrf_token="+url.QueryEscape(csrf)), "Content-Type", "application/x-www-form-urlencoded")
		r.AddCookie(c)
		w := g.serve(r)
		wantGuardRedirect(t, w, "/signin?signed_out=1")
		if out := guardSessionCookie(t, w); out.MaxAge >= 0 || out.Value != "" {
			t.Fatalf("sign-out cookie %+v does not clear the session", out)
		}
		r = loopbackRequest("POST", "/signout", nil)
		r.AddCookie(c)
		if w := g.serve(r); w.Code != http.StatusForbidden {
			t.Fatalf("sign-out without a CSRF token: %d", w.Code)
		}
	})
}

// TestAdminOriginBehindProxy: behind a trusted proxy that terminates TLS,
// the browser's origin is the proxy's X-Forwarded-Proto and -Host; from
// any other peer those headers change nothing.
func TestAdminOriginBehindProxy(t *testing.T) {
	opts := handlers.Options{Token: "t", AdminHosts: []string{"cache.example.com"}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	proxied := func(forwardedHost, origin string) *http.Request {
		return loopbackRequest("POST", "/api/purge-expired", nil, "Authorization", "Bearer t",
			"X-Forwarded-For", "203.0.113.5", "X-Forwarded-Proto", "https", "X-Forwarded-Host", forwardedHost, "Origin", origin)
	}
	tests := []struct {
		name string
		peer string
		r    *http.Request
		want int
	}{
		{"the public origin", "", proxied("cache.example.com", "https://cache.example.com"), http.StatusOK},
		{"the public origin, default port", "", proxied("cache.example.com:443", "https://cache.example.com"), http.StatusOK},
		{"another origin", "", proxied("cache.example.com", "https://evil.example"), http.StatusForbidden},
		{"plain http origin", "", proxied("cache.example.com", "http://cache.example.com"), http.StatusForbidden},
		{"a rebound name through the proxy", "", proxied("rebind.evil.example", "https://rebind.evil.example"), http.StatusMisdirectedRequest},
		{"an untrusted peer's forwarded host", "192.0.2.9:1000", proxied("cache.example.com", "https://cache.example.com"), http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuarded(t, opts)
			if tt.peer != "" {
				tt.r.RemoteAddr = tt.peer
			}
			if w := g.serve(tt.r); w.Code != tt.want {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tt.want)
			}
		})
	}
}
