package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/web"
)

// guarded is an upstream that checks what it receives: an API key for
// /keyed, a bearer token for /private, the real body for POST /search.
// A request that breaks its rules is answered as a real upstream would
// (401, 400) and counted as a violation.
type guarded struct {
	searches atomic.Int64
	flaky    atomic.Int64
	mu       sync.Mutex // protects bad
	bad      []string
}

func (u *guarded) violation(r *http.Request, why string) {
	u.mu.Lock()
	u.bad = append(u.bad, r.Method+" "+r.URL.String()+": "+why)
	u.mu.Unlock()
}

func (u *guarded) violations() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.bad...)
}

func (u *guarded) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain")
	notModified := func(etag string) bool {
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return true
		}
		return false
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/open/"):
		if !notModified(`"open"`) {
			io.WriteString(w, "open")
		}
	case r.URL.Path == "/keyed":
		if r.URL.Query().Get("api_key") != "k3y-s3cret" {
			u.violation(r, "no api key")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "keyed")
	case r.URL.Path == "/search":
		if string(body) != `{"q":"x"}` || r.Header.Get("Content-Type") != "application/json" {
			u.violation(r, fmt.Sprintf("body %q as %q", body, r.Header.Get("Content-Type")))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "results v%d for %s", u.searches.Add(1), body)
	case r.URL.Path == "/flaky":
		if u.flaky.Add(1) > 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "flaky")
	case r.URL.Path == "/private":
		if r.Header.Get("Authorization") != "Bearer alice-s3cret" && r.Header.Get("Authorization") != "Bearer bob" {
			u.violation(r, "no credential")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if !notModified(`"p"`) {
			io.WriteString(w, "private to "+r.Header.Get("Authorization"))
		}
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// TestAPIBulkRevalidateMix revalidates a mix of entries in one job: those
// that can be sent again are, those that cannot are skipped with a reason,
// a failing upstream is an error, and no entry is lost.
func TestAPIBulkRevalidateMix(t *testing.T) {
	up := &guarded{}
	us := httptest.NewServer(up)
	t.Cleanup(us.Close)
	p := cache.DefaultPolicy(cache.Expiry(3600e9))
	p.IgnoredParameters = []string{"api_key"}
	p.AllowableMethods = []string{"GET", "HEAD", "POST"}
	uc := web.UpstreamConfig{Name: "g", URL: us.URL, Policy: p,
		RevalidateHeaders: http.Header{"Authorization": {"Bearer alice-s3cret"}}}
	srv := startServer(t, web.Config{Backend: sqliteDSN(t), Upstreams: []web.UpstreamConfig{uc}})
	c := newAPI(t, srv)
	base := srv.URL() + "/fetch/g"

	for i := range 3 {
		wantCache(t, get(t, fmt.Sprintf("%s/open/%d", base, i)), "MISS")
	}
	wantCache(t, get(t, base+"/keyed?api_key=k3y-s3cret"), "MISS")
	wantCache(t, get(t, base+"/flaky"), "MISS")
	wantCache(t, get(t, base+"/private", "Authorization", "Bearer alice-s3cret"), "MISS")
	wantCache(t, get(t, base+"/private", "Authorization", "Bearer bob"), "MISS")
	req, _ := http.NewRequest("POST", base+"/search", strings.NewReader(`{"q":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Cache"); got != "MISS" {
		t.Fatalf("POST /search: X-Cache %q", got)
	}
	b := srv.Backends()["default"]
	before, err := b.Count(context.Background(), cache.Filter{})
	if err != nil || before.Entries != 8 {
		t.Fatalf("count before: %+v, %v; want 8 entries", before, err)
	}

	// One by one: the entry with the redacted API key says why it is skipped.
	var keyed string
	for _, e := range c.listAll("upstream=g") {
		if strings.Contains(e.URL, "/keyed") {
			keyed = e.Key
		}
	}
	var single struct {
		Outcome string `json:"outcome"`
		Reason  string `json:"reason"`
	}
	c.json("POST", "/api/entries/"+keyed+"/revalidate", nil, http.StatusOK, &single)
	if single.Outcome != "skipped" || !strings.Contains(single.Reason, "api_key") {
		t.Fatalf("single revalidation of the keyed entry: %+v", single)
	}

	var j job
	c.json("POST", "/api/revalidate", map[string]any{"filter": map[string]any{"upstream": "g"}}, http.StatusAccepted, &j)
	j = c.waitJob(j.ID)
	var snap struct {
		Skipped int64 `json:"skipped"`
		Errors  []struct {
			Key     string `json:"key"`
			Outcome string `json:"outcome"`
			Error   string `json:"error"`
		} `json:"errors"`
		Result struct {
			NotModified int64 `json:"not_modified"`
			Updated     int64 `json:"updated"`
			Gone        int64 `json:"gone"`
			Error       int64 `json:"error"`
			Skipped     int64 `json:"skipped"`
		} `json:"result"`
	}
	a := c.json("GET", "/api/jobs/"+j.ID, nil, http.StatusOK, &snap)
	r := snap.Result
	// not modified: three open entries and alice's (revalidate_headers
	// carry her token); updated: the search, sent with its body; skipped:
	// the keyed entry and bob's; error: the flaky one.
	if j.State != "done" || r.NotModified != 4 || r.Updated != 1 || r.Gone != 0 || r.Error != 1 || r.Skipped != 2 ||
		j.Done != 5 || j.Failed != 1 || snap.Skipped != 2 || j.Total != 8 {
		t.Fatalf("job: %s", a.body)
	}
	skips := 0
	for _, e := range snap.Errors {
		if e.Outcome == "skipped" {
			skips++
			if e.Error == "" || e.Key == "" {
				t.Errorf("a skip without its key or reason: %+v", e)
			}
		}
	}
	if skips != 2 {
		t.Errorf("%d skips among the job's errors, want 2: %s", skips, a.body)
	}
	if v := up.violations(); len(v) > 0 {
		t.Errorf("the upstream received requests it refuses: %v", v)
	}
	after, err := b.Count(context.Background(), cache.Filter{})
	if err != nil || after.Entries != before.Entries {
		t.Fatalf("count after the job: %+v, %v; want %d entries, as before", after, err, before.Entries)
	}

	// The secrets show nowhere: not in the upstreams, the entries or an export.
	ex := c.do("POST", "/api/export", map[string]any{"format": "ndjson"})
	ups := c.do("GET", "/api/upstreams", nil)
	for what, s := range map[string]string{"export": ex.body, "upstreams": ups.body} {
		if ex.status != http.StatusOK || ups.status != http.StatusOK {
			t.Fatalf("export %d, upstreams %d", ex.status, ups.status)
		}
		for _, secret := range []string{"alice-s3cret", "k3y-s3cret"} {
			if strings.Contains(s, secret) {
				t.Errorf("the %s shows %q", what, secret)
			}
		}
	}
	if !strings.Contains(ex.body, `"request_body_base64"`) {
		t.Errorf("the export carries no request body for the cached POST")
	}
	var line map[string]any
	for _, l := range strings.Split(ex.body, "\n") {
		if strings.Contains(l, `"method":"POST"`) {
			json.Unmarshal([]byte(l), &line)
		}
	}
	if line["request_body_base64"] != "eyJxIjoieCJ9" { // {"q":"x"}
		t.Errorf("the POST's request_body_base64 = %v", line["request_body_base64"])
	}
}
