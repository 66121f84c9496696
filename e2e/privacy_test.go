package e2e_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/web"
)

// startWhoami starts an upstream that answers with the Authorization it
// was sent, cacheable by any rules.
func startWhoami(t testing.TB) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		fmt.Fprintf(w, "you are %q", r.Header.Get("Authorization"))
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// Two users with different Authorization never see each other's response,
// with requests-cache's default ignored_parameters (which lists
// Authorization), with the fast lane answering hits and without it.
func TestCredentialsNeverSharedWithAndWithoutFastLane(t *testing.T) {
	who := startWhoami(t)
	for _, noLane := range []bool{false, true} {
		t.Run("fast lane off="+strconv.FormatBool(noLane), func(t *testing.T) {
			up := upstream("who", who)
			up.Policy.IgnoredParameters = []string{"Authorization"}
			srv := startServer(t, web.Config{Backend: sqliteDSN(t), Upstreams: []web.UpstreamConfig{up}, NoFastLane: noLane})
			u := srv.URL() + "/fetch/who/me"
			check := func(auth, xcache string) {
				t.Helper()
				a := get(t, u, "Authorization", auth)
				wantCache(t, a, xcache)
				if !strings.Contains(a.body, strconv.Quote(auth)) {
					t.Fatalf("%s got %q", auth, a.body)
				}
			}
			check("Bearer alice", "MISS")
			check("Bearer bob", "MISS")
			before := srv.FastLaneAnswers()
			check("Bearer alice", "HIT")
			check("Bearer bob", "HIT")
			lane := srv.FastLaneAnswers() - before
			if want := map[bool]int64{false: 2, true: 0}[noLane]; lane != want {
				t.Errorf("the fast lane answered %d hits, want %d", lane, want)
			}
		})
	}
}

// The startup warning reaches the logger web.Open is given.
func TestCredentialInIgnoredParametersWarnsAtStartup(t *testing.T) {
	up := upstream("github", "http://upstream.example")
	up.Policy.IgnoredParameters = []string{"access_token", "Authorization"}
	var log lockedBuffer
	srv, err := web.Open(context.Background(), web.Config{Listen: "127.0.0.1:0", Backend: "memory://", Upstreams: []web.UpstreamConfig{up}},
		slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := log.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "field=upstreams.github.ignored_parameters") || !strings.Contains(got, "Authorization is a credential") {
		t.Fatalf("log: %s", got)
	}
}

// cacheTTL returns Cache-Status's ttl= of an answer, or -1.
func cacheTTL(a answer) int {
	_, v, ok := strings.Cut(a.header.Get("Cache-Status"), "; ttl=")
	if !ok {
		return -1
	}
	v, _, _ = strings.Cut(v, ";")
	n, err := strconv.Atoi(v)
	if err != nil {
		return -1
	}
	return n
}

// The README's expiry example works on the demo upstream, which has
// client_overrides; a configured upstream without it ignores an anonymous
// client's X-Cachegate-Expire-After but obeys it with the admin token.
func TestExpireAfterHeaderNeedsOverridesOrToken(t *testing.T) {
	bin := startHTTPBin(t)
	const token = "e2e-admin-token"
	srv := startServer(t, web.Config{Backend: sqliteDSN(t), Demo: true, AdminToken: token, Upstreams: []web.UpstreamConfig{upstream("bin", bin)}})
	short := []string{cache.ExpireAfterHeader, "5s"}

	if a := get(t, srv.URL()+"/fetch/demo/get?short", short...); !strings.Contains(a.header.Get("Cache-Status"), "stored") || cacheTTL(a) > 5 || cacheTTL(a) < 0 {
		t.Fatalf("demo: Cache-Status %q, want stored with ttl at most 5", a.header.Get("Cache-Status"))
	}
	if a := get(t, srv.URL()+"/fetch/bin/get?short", short...); cacheTTL(a) < 3500 {
		t.Fatalf("anonymous on bin: Cache-Status %q, want the upstream's hour", a.header.Get("Cache-Status"))
	}
	if a := get(t, srv.URL()+"/fetch/bin/get?token", append(short, cache.TokenHeader, token)...); cacheTTL(a) > 5 || cacheTTL(a) < 0 {
		t.Fatalf("with the token on bin: Cache-Status %q, want ttl at most 5", a.header.Get("Cache-Status"))
	}
	if a := get(t, srv.URL()+"/fetch/bin/get?token", cache.TokenHeader, "not-it"); a.status != http.StatusForbidden || !strings.Contains(a.body, `"bad_token"`) {
		t.Fatalf("a wrong token: %d %s", a.status, a.body)
	}
}
