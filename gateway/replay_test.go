package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
)

// seen is one request an upstream received.
type seen struct {
	method, url string
	header      http.Header
	body        string
}

// recorder is an upstream that records what it receives and answers with
// its answer function.
type recorder struct {
	answer func(w http.ResponseWriter, r *http.Request, body string)
	mu     sync.Mutex // protects got
	got    []seen
}

func (u *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.got = append(u.got, seen{method: r.Method, url: r.URL.String(), header: r.Header.Clone(), body: string(b)})
	u.mu.Unlock()
	u.answer(w, r, string(b))
}

// calls returns the requests received so far.
func (u *recorder) calls() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.got...)
}

// last returns the latest request received.
func (u *recorder) last(tb testing.TB) seen {
	tb.Helper()
	c := u.calls()
	if len(c) == 0 {
		tb.Fatal("the upstream received nothing")
	}
	return c[len(c)-1]
}

// replayGateway is a second gateway over e's backend and upstream, with
// the same policy, that revalidates with revalidate headers rh: the keys
// it computes are those of e's gateway.
func replayGateway(tb testing.TB, e *env, p cache.Policy, rh http.Header) *gateway.Gateway {
	tb.Helper()
	u, _ := url.Parse(e.upstream.URL)
	g, err := gateway.New(gateway.Options{Now: e.clock.Now}, gateway.Upstream{
		Name: "up", URL: u, Policy: p, Backend: e.backend, BackendName: "default", Timeout: 2 * time.Second,
		RevalidateHeaders: rh,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { g.Close() })
	return g
}

// mustGet returns the stored entry under key.
func mustGet(tb testing.TB, b cache.Backend, key string) *cache.Entry {
	tb.Helper()
	got, ok, err := b.Get(context.Background(), key)
	if err != nil || !ok {
		tb.Fatalf("Get(%s) = %v, %v", key, ok, err)
	}
	return got
}

func TestRevalidateReplaysPostBody(t *testing.T) {
	var version atomic.Int64
	version.Store(1)
	up := &recorder{answer: func(w http.ResponseWriter, r *http.Request, body string) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "v"+strconv.FormatInt(version.Load(), 10)+" answer to "+r.Header.Get("Content-Type")+" "+body)
	}}
	p := policy(func(p *cache.Policy) { p.AllowableMethods = []string{"GET", "HEAD", "POST"} })
	e := newEnv(t, p, up, nil)
	ctx := context.Background()

	bodies := []string{`{"q":"first"}`, `{"q":"second"}`}
	for _, b := range bodies {
		if r := e.doBody("POST", "/search", strings.NewReader(b), "Content-Type", "application/json"); r.xcache() != "MISS" {
			t.Fatalf("POST %s: X-Cache %q", b, r.xcache())
		}
	}
	es := e.entries()
	if len(es) != 2 {
		t.Fatalf("%d entries, want one per body", len(es))
	}
	version.Store(2)
	for _, listed := range es {
		stored := mustGet(t, e.backend, listed.Key)
		res, err := e.gw.Revalidate(ctx, e.backend, listed.Key)
		if err != nil || res.Outcome != gateway.OutcomeUpdated {
			t.Fatalf("revalidate: %+v, %v", res, err)
		}
		got := up.last(t)
		if got.method != "POST" || got.body != string(stored.RequestBody) || got.header.Get("Content-Type") != "application/json" {
			t.Fatalf("the upstream received %s %q (Content-Type %q), want POST %q as application/json",
				got.method, got.body, got.header.Get("Content-Type"), stored.RequestBody)
		}
		after := mustGet(t, e.backend, listed.Key)
		if want := "v2 answer to application/json " + string(stored.RequestBody); string(after.Body) != want {
			t.Fatalf("entry body after revalidation %q, want %q", after.Body, want)
		}
		if string(after.RequestBody) != string(stored.RequestBody) {
			t.Fatalf("the revalidation changed the request body: %q, was %q", after.RequestBody, stored.RequestBody)
		}
	}
	// Each entry kept the answer to its own body: the cache serves them.
	for _, b := range bodies {
		r := e.doBody("POST", "/search", strings.NewReader(b), "Content-Type", "application/json")
		if want := "v2 answer to application/json " + b; r.xcache() != "HIT" || r.body != want {
			t.Fatalf("POST %s after revalidation: %s %q, want HIT %q", b, r.xcache(), r.body, want)
		}
	}
}

func TestRevalidateRedactedBodyIsSkipped(t *testing.T) {
	up := &recorder{answer: func(w http.ResponseWriter, r *http.Request, body string) { io.WriteString(w, "ok") }}
	p := policy(func(p *cache.Policy) {
		p.AllowableMethods = []string{"GET", "HEAD", "POST"}
		p.IgnoredParameters = []string{"token"}
	})
	e := newEnv(t, p, up, nil)
	e.doBody("POST", "/form", strings.NewReader("q=1&token=s3cret"), "Content-Type", "application/x-www-form-urlencoded")
	key := onlyKey(t, e)
	stored := mustGet(t, e.backend, key)
	if strings.Contains(string(stored.RequestBody), "s3cret") || !strings.Contains(string(stored.RequestBody), "token=REDACTED") {
		t.Fatalf("stored request body %q, want the token redacted", stored.RequestBody)
	}
	n := len(up.calls())
	res, err := e.gw.Revalidate(context.Background(), e.backend, key)
	if err != nil || res.Outcome != gateway.OutcomeSkipped || !strings.Contains(res.Reason, "request body") {
		t.Fatalf("revalidate: %+v, %v; want skipped for the request body", res, err)
	}
	if len(up.calls()) != n {
		t.Fatal("a skipped revalidation sent a request")
	}
	if after := mustGet(t, e.backend, key); !reflect.DeepEqual(after, stored) {
		t.Fatalf("a skipped revalidation changed the entry")
	}
}

// keyed answers 401 unless the request carries the API key, in the
// query or in X-Api-Key.
func keyed(w http.ResponseWriter, r *http.Request, _ string) {
	if r.URL.Query().Get("api_key") != "secret" && r.Header.Get("X-Api-Key") != "secret" {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"api key required"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"data":1}`)
}

func TestRevalidateAPIKeyInQueryIsSkipped(t *testing.T) {
	up := &recorder{answer: keyed}
	p := policy(func(p *cache.Policy) { p.IgnoredParameters = []string{"api_key"} })
	e := newEnv(t, p, up, nil)
	e.get("/data?api_key=secret&page=1", "MISS")
	key := onlyKey(t, e)
	stored := mustGet(t, e.backend, key)
	// revalidate_headers fill headers, never a query parameter.
	g := replayGateway(t, e, p, http.Header{"X-Other": {"x"}})
	for _, gw := range []*gateway.Gateway{e.gw, g} {
		res, err := gw.Revalidate(context.Background(), e.backend, key)
		if err != nil || res.Outcome != gateway.OutcomeSkipped || !strings.Contains(res.Reason, `"api_key"`) {
			t.Fatalf("revalidate: %+v, %v; want skipped naming api_key", res, err)
		}
	}
	if n := len(up.calls()); n != 1 {
		t.Fatalf("the upstream received %d requests, want only the first fetch", n)
	}
	if after := mustGet(t, e.backend, key); !reflect.DeepEqual(after, stored) {
		t.Fatalf("a skipped revalidation changed the entry")
	}
}

func TestRevalidateHeadersFillRedactedHeader(t *testing.T) {
	up := &recorder{answer: keyed}
	p := policy(func(p *cache.Policy) {
		p.IgnoredParameters = []string{"X-Api-Key"}
		p.MatchHeaders = []string{"X-Api-Key", "Accept"}
	})
	e := newEnv(t, p, up, nil)
	e.get("/data", "MISS", "X-Api-Key", "secret", "Accept", "application/json")
	key := onlyKey(t, e)
	stored := mustGet(t, e.backend, key)
	if got := stored.RequestHeader.Get("X-Api-Key"); got != gateway.Redacted {
		t.Fatalf("stored X-Api-Key %q, want REDACTED", got)
	}
	ctx := context.Background()

	res, err := e.gw.Revalidate(ctx, e.backend, key)
	if err != nil || res.Outcome != gateway.OutcomeSkipped || !strings.Contains(res.Reason, "X-Api-Key") {
		t.Fatalf("without revalidate_headers: %+v, %v; want skipped naming X-Api-Key", res, err)
	}
	if len(up.calls()) != 1 {
		t.Fatal("a skipped revalidation sent a request")
	}

	g := replayGateway(t, e, p, http.Header{"x-api-key": {"secret"}})
	res, err = g.Revalidate(ctx, e.backend, key)
	if err != nil || res.Outcome != gateway.OutcomeUpdated || !res.Stored {
		t.Fatalf("with revalidate_headers: %+v, %v; want updated", res, err)
	}
	got := up.last(t)
	if got.header.Get("X-Api-Key") != "secret" || got.header.Get("Accept") != "application/json" {
		t.Fatalf("the upstream received headers %v", got.header)
	}
	after := mustGet(t, e.backend, key)
	if after.RequestHeader.Get("X-Api-Key") != gateway.Redacted || strings.Contains(after.RequestHeader.Get("X-Api-Key"), "secret") {
		t.Fatalf("the revalidated entry stores X-Api-Key %q, want REDACTED", after.RequestHeader.Get("X-Api-Key"))
	}
	e.get("/data", "HIT", "X-Api-Key", "other", "Accept", "application/json")
}

func TestRevalidateHeadersAddUnstoredHeader(t *testing.T) {
	up := &recorder{answer: keyed}
	p := policy()
	e := newEnv(t, p, up, nil)
	// The client's key is neither matched nor stored: nothing says the
	// request had it, so a replay without it meets a 401, which must
	// leave the entry alone.
	e.get("/data", "MISS", "X-Api-Key", "secret")
	key := onlyKey(t, e)
	stored := mustGet(t, e.backend, key)
	ctx := context.Background()
	res, err := e.gw.Revalidate(ctx, e.backend, key)
	if err != nil || res.Outcome != gateway.OutcomeError || res.Status != http.StatusUnauthorized || !strings.Contains(res.Error, "401") {
		t.Fatalf("replay without the key: %+v, %v; want error 401", res, err)
	}
	if after := mustGet(t, e.backend, key); !reflect.DeepEqual(after, stored) {
		t.Fatalf("a 401 changed the entry")
	}
	g := replayGateway(t, e, p, http.Header{"X-Api-Key": {"secret"}})
	if res, err = g.Revalidate(ctx, e.backend, key); err != nil || res.Outcome != gateway.OutcomeUpdated {
		t.Fatalf("replay with revalidate_headers: %+v, %v; want updated", res, err)
	}
}

func TestRevalidateCredentials(t *testing.T) {
	up := &recorder{answer: func(w http.ResponseWriter, r *http.Request, _ string) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "for "+r.Header.Get("Authorization"))
	}}
	p := policy()
	e := newEnv(t, p, up, nil)
	e.get("/me", "MISS", "Authorization", "Bearer alice")
	e.get("/public", "MISS")
	var alice, public string
	for _, en := range e.entries() {
		if strings.HasSuffix(en.URL, "/me") {
			alice = en.Key
		} else {
			public = en.Key
		}
	}
	stored := mustGet(t, e.backend, alice)
	if got := stored.RequestHeader.Get("Authorization"); got != gateway.Redacted {
		t.Fatalf("stored Authorization %q, want REDACTED (the credential noted, never its value)", got)
	}
	ctx := context.Background()
	cases := []struct {
		name     string
		rh       http.Header
		key      string
		outcome  string
		reason   string
		sentAuth string // what the upstream receives, when something is sent
	}{
		{name: "no revalidate_headers", key: alice, outcome: gateway.OutcomeSkipped, reason: "Authorization"},
		{name: "another credential", rh: http.Header{"Authorization": {"Bearer bob"}}, key: alice, outcome: gateway.OutcomeSkipped, reason: "not the credential"},
		{name: "the same credential", rh: http.Header{"Authorization": {"Bearer alice"}}, key: alice, outcome: gateway.OutcomeUpdated, sentAuth: "Bearer alice"},
		{name: "a public entry gets no credential", rh: http.Header{"Authorization": {"Bearer alice"}}, key: public, outcome: gateway.OutcomeUpdated, sentAuth: ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := mustGet(t, e.backend, c.key)
			n := len(up.calls())
			res, err := replayGateway(t, e, p, c.rh).Revalidate(ctx, e.backend, c.key)
			if err != nil || res.Outcome != c.outcome || !strings.Contains(res.Reason, c.reason) {
				t.Fatalf("revalidate: %+v, %v; want %s (%q)", res, err, c.outcome, c.reason)
			}
			if c.outcome == gateway.OutcomeSkipped {
				if len(up.calls()) != n {
					t.Fatal("a skipped revalidation sent a request")
				}
				if after := mustGet(t, e.backend, c.key); !reflect.DeepEqual(after, before) {
					t.Fatal("a skipped revalidation changed the entry")
				}
				return
			}
			if got := up.last(t).header.Get("Authorization"); got != c.sentAuth {
				t.Fatalf("the upstream received Authorization %q, want %q", got, c.sentAuth)
			}
		})
	}
	if r := e.get("/me", "HIT", "Authorization", "Bearer alice"); r.body != "for Bearer alice" {
		t.Fatalf("alice's entry holds %q", r.body)
	}
}

// TestRevalidateFailureKeepsEntry checks that an answer saying nothing
// about the entry (the replay refused, limited, failing, redirected to a
// login page, or cut off) leaves it exactly as it was.
func TestRevalidateFailureKeepsEntry(t *testing.T) {
	cases := []struct {
		name   string
		answer func(w http.ResponseWriter)
		want   string // in the error
	}{
		{"401", func(w http.ResponseWriter) { w.WriteHeader(401) }, "401"},
		{"403", func(w http.ResponseWriter) { w.WriteHeader(403) }, "403"},
		{"429", func(w http.ResponseWriter) { w.WriteHeader(429) }, "429"},
		{"500", func(w http.ResponseWriter) { w.WriteHeader(500) }, "500"},
		{"503", func(w http.ResponseWriter) { w.WriteHeader(503) }, "503"},
		{"400", func(w http.ResponseWriter) { w.WriteHeader(400) }, "400"},
		{"redirect to a login page", func(w http.ResponseWriter) {
			w.Header().Set("Location", "/login")
			w.WriteHeader(302)
		}, "302"},
		{"body cut off", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "short")
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close()
			}
		}, "reading the response body"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var fail atomic.Bool
			up := &recorder{answer: func(w http.ResponseWriter, r *http.Request, _ string) {
				if fail.Load() {
					c.answer(w)
					return
				}
				w.Header().Set("Content-Type", "text/plain")
				io.WriteString(w, "the entry")
			}}
			e := newEnv(t, policy(), up, nil)
			e.get("/doc", "MISS")
			key := onlyKey(t, e)
			before := mustGet(t, e.backend, key)
			fail.Store(true)
			res, err := e.gw.Revalidate(context.Background(), e.backend, key)
			if err != nil || res.Outcome != gateway.OutcomeError || !strings.Contains(res.Error, c.want) || !strings.Contains(res.Error, "kept") {
				t.Fatalf("revalidate: %+v, %v; want an error with %q", res, err, c.want)
			}
			if after := mustGet(t, e.backend, key); !reflect.DeepEqual(after, before) {
				t.Fatalf("the entry changed:\n%+v\nwas\n%+v", after, before)
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		up := &recorder{answer: func(w http.ResponseWriter, r *http.Request, _ string) { io.WriteString(w, "the entry") }}
		e := newEnv(t, policy(), up, nil)
		e.get("/doc", "MISS")
		key := onlyKey(t, e)
		before := mustGet(t, e.backend, key)
		e.upstream.Close()
		res, err := e.gw.Revalidate(context.Background(), e.backend, key)
		if err != nil || res.Outcome != gateway.OutcomeError || res.Error == "" {
			t.Fatalf("revalidate: %+v, %v; want an error", res, err)
		}
		if after := mustGet(t, e.backend, key); !reflect.DeepEqual(after, before) {
			t.Fatal("the entry changed")
		}
	})
}

// TestRevalidateNeverShowsRevalidateHeaders checks that the configured
// secrets reach the upstream and nothing else: not the stored entry, not
// the answer, not an error.
func TestRevalidateNeverShowsRevalidateHeaders(t *testing.T) {
	up := &recorder{answer: func(w http.ResponseWriter, r *http.Request, _ string) {
		if r.Header.Get("X-Api-Key") != "t0psecret" {
			w.WriteHeader(403)
			return
		}
		io.WriteString(w, "fine")
	}}
	p := policy(func(p *cache.Policy) {
		p.IgnoredParameters = []string{"X-Api-Key"}
		p.MatchHeaders = []string{"X-Api-Key"}
	})
	e := newEnv(t, p, up, nil)
	e.get("/x", "MISS", "X-Api-Key", "t0psecret")
	key := onlyKey(t, e)
	g := replayGateway(t, e, p, http.Header{"X-Api-Key": {"t0psecret"}})
	res, err := g.Revalidate(context.Background(), e.backend, key)
	if err != nil || res.Outcome != gateway.OutcomeUpdated {
		t.Fatalf("revalidate: %+v, %v", res, err)
	}
	after := mustGet(t, e.backend, key)
	for what, s := range map[string]string{
		"entry":     after.URL + after.Reason + string(after.RequestBody) + headerText(after.RequestHeader) + headerText(after.Header),
		"answer":    res.Reason + res.Error + changesText(res.Changes),
		"upstreams": upstreamsText(g),
	} {
		if strings.Contains(s, "t0psecret") {
			t.Errorf("the %s shows the revalidate header's value: %s", what, s)
		}
	}
	// Unreachable: the error names the upstream, not the headers.
	e.upstream.Close()
	res, _ = g.Revalidate(context.Background(), e.backend, key)
	if strings.Contains(res.Error, "t0psecret") {
		t.Errorf("the error shows the revalidate header's value: %s", res.Error)
	}
}

func headerText(h http.Header) string {
	var sb strings.Builder
	for k, v := range h {
		sb.WriteString(k + ": " + strings.Join(v, ",") + "\n")
	}
	return sb.String()
}

func changesText(c *gateway.Changes) string {
	if c == nil {
		return ""
	}
	var sb strings.Builder
	for _, h := range c.Headers {
		sb.WriteString(h.Name + h.Before + h.After)
	}
	return sb.String() + c.BodyDiff
}

func upstreamsText(g *gateway.Gateway) string {
	var sb strings.Builder
	for _, u := range g.Upstreams() {
		sb.WriteString(u.Name + u.URL + u.Backend + u.Timeout)
	}
	return sb.String()
}

// TestRevalidateEntryWithoutRequestBodyIsSkipped checks an entry of a
// POST stored before request bodies were kept: its key says a body was
// part of the request, so sending none would answer another request.
func TestRevalidateEntryWithoutRequestBodyIsSkipped(t *testing.T) {
	up := &recorder{answer: func(w http.ResponseWriter, r *http.Request, body string) { io.WriteString(w, "answer to "+body) }}
	p := policy(func(p *cache.Policy) { p.AllowableMethods = []string{"GET", "HEAD", "POST"} })
	e := newEnv(t, p, up, nil)
	e.doBody("POST", "/search", strings.NewReader(`{"q":1}`), "Content-Type", "application/json")
	key := onlyKey(t, e)
	old := mustGet(t, e.backend, key)
	old.RequestBody = nil
	if err := e.backend.Put(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	stored := mustGet(t, e.backend, key)
	res, err := e.gw.Revalidate(context.Background(), e.backend, key)
	if err != nil || res.Outcome != gateway.OutcomeSkipped || !strings.Contains(res.Reason, "request body was not kept") {
		t.Fatalf("revalidate: %+v, %v; want skipped for the missing body", res, err)
	}
	if n := len(up.calls()); n != 1 {
		t.Fatalf("the upstream received %d requests, want only the first", n)
	}
	if after := mustGet(t, e.backend, key); !reflect.DeepEqual(after, stored) {
		t.Fatal("a skipped revalidation changed the entry")
	}
}
