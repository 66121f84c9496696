package e2e_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/mongo/mongotest"
	"github.com/cachegate/cachegate/web"
)

// /healthz says the process is alive whatever the backends do; /readyz
// follows MongoDB: 503 naming the backend while it is down, while /fetch/
// keeps forwarding (uncached, Cache-Status saying why), and 200 again by
// itself once it is back.
func TestReadyzFollowsMongoDB(t *testing.T) {
	bin := startHTTPBin(t)
	mongod := mongotest.NewServer(t)
	cfg := web.Config{Backend: mongod.URI() + "ready?serverSelectionTimeoutMS=300",
		Upstreams: []web.UpstreamConfig{upstream("bin", bin)}}
	srv := startServer(t, cfg)
	base := srv.URL()
	if a := get(t, base+"/readyz"); a.status != http.StatusOK {
		t.Fatalf("readyz with MongoDB up: %d %s", a.status, a.body)
	}
	wantCache(t, get(t, base+"/fetch/bin/get?n=1"), "MISS")
	wantCache(t, get(t, base+"/fetch/bin/get?n=1"), "HIT")

	mongod.Stop()
	a := get(t, base+"/readyz")
	if a.status != http.StatusServiceUnavailable || !strings.Contains(a.body, `"default"`) {
		t.Fatalf("readyz with MongoDB down: %d %s, want 503 naming the backend", a.status, a.body)
	}
	if a := get(t, base+"/healthz"); a.status != http.StatusOK {
		t.Fatalf("healthz with MongoDB down: %d %s", a.status, a.body)
	}
	// Under load, every request is still answered from the upstream.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				r := get(t, base+"/fetch/bin/get?n=1")
				if r.status != http.StatusOK || !strings.Contains(r.header.Get("Cache-Status"), "detail=backend-unavailable") {
					mu.Lock()
					failed = append(failed, r.header.Get("X-Cache")+" "+r.header.Get("Cache-Status")+" "+http.StatusText(r.status))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("with MongoDB down, %d of 20 requests were not forwarded with a reason: %q", len(failed), failed)
	}

	if err := mongod.Start(); err != nil {
		t.Fatal(err)
	}
	// The driver reconnects by itself; poll the probe as a load balancer does.
	deadline := time.Now().Add(30 * time.Second)
	for get(t, base+"/readyz").status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("readyz did not recover after MongoDB came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The gateway pings the backend it saw fail once a second, and uses
	// it again once it answers.
	for get(t, base+"/fetch/bin/get?n=1").header.Get("X-Cache") != "HIT" {
		if time.Now().After(deadline) {
			t.Fatal("requests did not use MongoDB again after it came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	wantCache(t, get(t, base+"/fetch/bin/get?n=2"), "MISS")
	wantCache(t, get(t, base+"/fetch/bin/get?n=2"), "HIT")
}
