package e2e_test

// Tests of the admin side's guard over real HTTP: the requests a page on
// another site, a DNS-rebinding name or a reverse proxy would send.

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/cachegate/cachegate/web"
)

// send makes one request with the given Host (empty: the URL's) and
// header pairs, and returns the answer.
func guardSend(t testing.TB, method, rawURL, host, body string, header ...string) answer {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, r)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func wantGuardCode(t testing.TB, a answer, status int, code string) {
	t.Helper()
	if a.status != status || !strings.Contains(a.body, `"code":"`+code+`"`) {
		t.Fatalf("got %d %s, want %d %s", a.status, a.body, status, code)
	}
}

// TestAdminRefusesOtherSites: what a page on another site can make the
// operator's browser send to a cachegate on loopback is refused, and the
// cache it aims at is untouched.
func TestAdminRefusesOtherSites(t *testing.T) {
	bin := startHTTPBin(t)
	srv := startServer(t, web.Config{Backend: "memory://", AdminHosts: []string{"cache.test"}, Upstreams: []web.UpstreamConfig{upstream("bin", bin)}})
	base := srv.URL()
	wantCache(t, get(t, base+"/fetch/bin/get"), "MISS")

	// A form or fetch() with text/plain: no preflight, so the browser sends it.
	wantGuardCode(t, guardSend(t, "POST", base+"/api/delete", "", `{"all":true}`, "Content-Type", "text/plain;charset=UTF-8"), http.StatusUnsupportedMediaType, "unsupported_media_type")
	wantGuardCode(t, guardSend(t, "POST", base+"/api/delete", "", "all=true", "Content-Type", "application/x-www-form-urlencoded", "Origin", "http://evil.example"), http.StatusForbidden, "cross_site")
	wantGuardCode(t, guardSend(t, "POST", base+"/api/purge-expired", "", "", "Sec-Fetch-Site", "cross-site"), http.StatusForbidden, "cross_site")
	// DNS rebinding: the attacker's name, pointed at 127.0.0.1.
	u, _ := url.Parse(base)
	rebound := "rebind.evil.example:" + u.Port()
	for _, path := range []string{"/api/entries", "/api/openapi.json", "/debug/pprof/", "/metrics"} {
		wantGuardCode(t, guardSend(t, "GET", base+path, rebound, ""), http.StatusMisdirectedRequest, "unknown_host")
	}
	if a := guardSend(t, "POST", base+"/signin", rebound, "token=x", "Content-Type", "application/x-www-form-urlencoded"); a.status != http.StatusMisdirectedRequest {
		t.Fatalf("POST /signin at a rebound name: %d %s", a.status, a.body)
	}
	// A local reverse proxy passing on a client from elsewhere.
	wantGuardCode(t, guardSend(t, "GET", base+"/api/entries", "", "", "X-Forwarded-For", "203.0.113.7"), http.StatusForbidden, "admin_disabled")
	wantCache(t, get(t, base+"/fetch/bin/get"), "HIT")

	// The names it is reachable under answer; JSON bodies go through.
	for _, host := range []string{"", "localhost:" + u.Port(), "cache.test:" + u.Port()} {
		if a := guardSend(t, "GET", base+"/api/stats", host, "", "Sec-Fetch-Site", "same-origin"); a.status != http.StatusOK {
			t.Fatalf("GET /api/stats at %q: %d %s", host, a.status, a.body)
		}
	}
	if a := guardSend(t, "POST", base+"/api/delete", "", `{"all":true}`, "Content-Type", "application/json"); a.status != http.StatusOK {
		t.Fatalf("a JSON delete: %d %s", a.status, a.body)
	}
	wantCache(t, get(t, base+"/fetch/bin/get"), "MISS")
}

// TestFetchIgnoresHostileHeaders: Host and proxy headers never change
// which upstream /fetch/ reaches, on a miss or on a hit the fast lane
// answers; and /fetch/ answers any Host.
func TestFetchIgnoresHostileHeaders(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]string{} // upstream name → Host headers it received
	upstreamAt := func(name string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen[name] = append(seen[name], r.Host)
			mu.Unlock()
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "from "+name+" "+r.URL.Path)
		}))
		t.Cleanup(s.Close)
		return s.URL
	}
	good, other := upstreamAt("good"), upstreamAt("other")
	srv := startServer(t, web.Config{Backend: "memory://", Upstreams: []web.UpstreamConfig{upstream("good", good), upstream("other", other)}})
	hostile := []string{
		"X-Forwarded-Host", strings.TrimPrefix(other, "http://"),
		"X-Forwarded-For", "127.0.0.1",
		"X-Real-IP", "127.0.0.1",
		"Forwarded", "for=127.0.0.1;host=" + strings.TrimPrefix(other, "http://"),
		"X-Original-URL", "/fetch/other/x",
		"X-Rewrite-URL", "/fetch/other/x",
	}
	for i, host := range []string{strings.TrimPrefix(other, "http://"), "other", "evil.example", "localhost"} {
		a := guardSend(t, "GET", srv.URL()+"/fetch/good/x", host, "", hostile...)
		if a.status != http.StatusOK || a.body != "from good /x" {
			t.Fatalf("Host %q: %d %q", host, a.status, a.body)
		}
		want := "HIT"
		if i == 0 {
			want = "MISS"
		}
		wantCache(t, a, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen["other"]) != 0 {
		t.Fatalf("the other upstream was reached: %v", seen["other"])
	}
	if len(seen["good"]) != 1 || seen["good"][0] != strings.TrimPrefix(good, "http://") {
		t.Fatalf("the upstream saw Host %v, want its own once", seen["good"])
	}
	if srv.FastLaneAnswers() == 0 {
		t.Fatal("no hit went through the fast lane")
	}
}

// TestAdminGuardWiring: the server passes trusted_proxies to the guard and
// mounts the sign-in routes behind it.
func TestAdminGuardWiring(t *testing.T) {
	srv := startServer(t, web.Config{Backend: "memory://", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	base := srv.URL()
	if a := guardSend(t, "GET", base+"/api/stats", "", "", "X-Forwarded-For", "127.0.0.1"); a.status != http.StatusOK {
		t.Fatalf("a local client through a trusted proxy: %d %s", a.status, a.body)
	}
	wantGuardCode(t, guardSend(t, "GET", base+"/api/stats", "", "", "X-Forwarded-For", "203.0.113.7"), http.StatusForbidden, "admin_disabled")

	srv = startServer(t, web.Config{Backend: "memory://", AdminToken: "s3cret"})
	for _, path := range []string{"/signin", "/signout"} {
		// Mounted, and refused without the form's CSRF token.
		a := guardSend(t, "POST", srv.URL()+path, "", "token=s3cret", "Content-Type", "application/x-www-form-urlencoded")
		if a.status != http.StatusForbidden || a.header.Get("Content-Security-Policy") == "" {
			t.Fatalf("POST %s without a CSRF token: %d %v %s", path, a.status, a.header, a.body)
		}
	}
}
