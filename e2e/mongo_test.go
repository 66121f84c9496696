package e2e_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cachegate/cachegate/backends/mongo/mongotest"
	"github.com/cachegate/cachegate/web"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mongotest.Shutdown()
	os.Exit(code)
}

// TestTwoGatewaysShareOneMongoDB runs two cachegate servers on one MongoDB,
// as a team does when one machine is not enough: what one stores the other
// serves, and what one deletes is gone for the other.
func TestTwoGatewaysShareOneMongoDB(t *testing.T) {
	bin := startHTTPBin(t)
	dsn := mongotest.URI(t)
	cfg := web.Config{Backend: dsn, Upstreams: []web.UpstreamConfig{upstream("bin", bin)}}
	a := startServer(t, cfg)
	b := startServer(t, cfg)

	first := get(t, a.URL()+"/fetch/bin/get?shared=1")
	wantCache(t, first, "MISS")
	second := get(t, b.URL()+"/fetch/bin/get?shared=1")
	wantCache(t, second, "HIT")
	if second.body != first.body {
		t.Fatal("the second gateway served another body")
	}

	// Find the entry through b's admin API and delete it through a's.
	var list struct {
		Entries []struct {
			Key string `json:"key"`
		} `json:"entries"`
	}
	newAPI(t, b).json(http.MethodGet, "/api/entries?url=shared%3D1", nil, http.StatusOK, &list)
	if len(list.Entries) != 1 {
		t.Fatalf("listing through b: %d entries, want 1", len(list.Entries))
	}
	if a := newAPI(t, a).do(http.MethodDelete, "/api/entries/"+list.Entries[0].Key, nil); a.status/100 != 2 {
		t.Fatalf("delete through a: %d %s", a.status, a.body)
	}
	wantCache(t, get(t, b.URL()+"/fetch/bin/get?shared=1"), "MISS")
}

// versionedUpstream answers /v with the current version, and /held after
// release is closed, counting the calls for /held.
type versionedUpstream struct {
	url     string
	version atomic.Int64
	held    atomic.Int64
	release chan struct{}
}

func startVersionedUpstream(t *testing.T) *versionedUpstream {
	u := &versionedUpstream{release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/held" {
			u.held.Add(1)
			<-u.release
		}
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprintf(w, "version %d", u.version.Load())
	}))
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

// Two replicas on one MongoDB: a bulk revalidation through one's admin API
// is what the other serves at once, and a herd split across both costs
// one upstream call per replica (each coalesces its own requests;
// nothing coordinates calls across replicas, and the second replica's
// callers find the first's entry only once it is stored).
func TestTwoReplicasShareRevalidationsAndCoalesce(t *testing.T) {
	up := startVersionedUpstream(t)
	dsn := mongotest.URI(t)
	cfg := web.Config{Backend: dsn, Upstreams: []web.UpstreamConfig{upstream("up", up.url)}}
	a := startServer(t, cfg)
	b := startServer(t, cfg)

	wantCache(t, get(t, a.URL()+"/fetch/up/v"), "MISS")
	if got := get(t, b.URL()+"/fetch/up/v"); got.body != "version 0" {
		t.Fatalf("b serves %q, want a's entry", got.body)
	}
	up.version.Store(1)
	var j job
	c := newAPI(t, a)
	c.json(http.MethodPost, "/api/revalidate", map[string]any{"filter": map[string]any{"upstream": "up"}}, http.StatusAccepted, &j)
	if j = c.waitJob(j.ID); j.State != "done" || j.Done != 1 {
		t.Fatalf("revalidate through a: %+v", j)
	}
	got := get(t, b.URL()+"/fetch/up/v")
	wantCache(t, got, "HIT")
	if got.body != "version 1" {
		t.Fatalf("after a's revalidation b serves %q, want version 1", got.body)
	}

	const herd = 20
	var wg sync.WaitGroup
	answers := make([]answer, herd)
	for i := range herd {
		srv := a
		if i%2 == 1 {
			srv = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = get(t, srv.URL()+"/fetch/up/held")
		}()
	}
	// Each replica's first request calls the upstream (nothing is stored
	// until it answers); the others join their replica's call, or, late,
	// find the entry stored.
	for up.held.Load() < 2 {
		runtime.Gosched()
	}
	close(up.release)
	wg.Wait()
	for i, ans := range answers {
		if ans.status != http.StatusOK || ans.body != "version 1" {
			t.Fatalf("herd request %d: %d %q", i, ans.status, ans.body)
		}
	}
	if n := up.held.Load(); n != 2 {
		t.Fatalf("a herd of %d split across two replicas cost %d upstream calls, want one per replica", herd, n)
	}
	t.Logf("a herd of %d requests across two replicas: %d upstream calls", herd, up.held.Load())
}
