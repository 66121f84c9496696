package e2e_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachegate/cachegate/web"
)

// accessLines collects JSON access log lines and hands each over on a
// channel: a line is written after its answer has gone out.
type accessLines struct {
	mu  sync.Mutex // protects all
	all strings.Builder
	c   chan map[string]any
}

func (a *accessLines) Write(b []byte) (int, error) {
	a.mu.Lock()
	a.all.Write(b)
	a.mu.Unlock()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		m = map[string]any{"unparsed": string(b), "err": err.Error()}
	}
	a.c <- m
	return len(b), nil
}

func (a *accessLines) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case m := <-a.c:
		if _, bad := m["unparsed"]; bad {
			t.Fatalf("access log line is not JSON: %v", m)
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no access log line")
		return nil
	}
}

// The server's access log options reach the gateway: JSON lines with no
// secret, the X-Request-Id sent back, one hit in two logged with
// access_log_sample_hits: 2, through the fast lane and without it.
func TestAccessLogThroughTheServer(t *testing.T) {
	bin := startHTTPBin(t)
	for _, noLane := range []bool{false, true} {
		lines := &accessLines{c: make(chan map[string]any, 100)}
		up := upstream("bin", bin)
		up.Policy.IgnoredParameters = []string{"access_token"}
		srv := startServer(t, web.Config{Backend: "memory://", Upstreams: []web.UpstreamConfig{up}, NoFastLane: noLane,
			AccessLogSampleHits: 2, AccessLogger: slog.New(slog.NewJSONHandler(lines, nil))})
		u := srv.URL() + "/fetch/bin/get?access_token=param-5ecret"
		secrets := []string{"Authorization", "Bearer token-5ecret", "Cookie", "sid=cookie-5ecret"}

		miss := get(t, u, secrets...)
		wantCache(t, miss, "MISS")
		m := lines.next(t)
		if m["cache"] != "MISS" || m["request_id"] != miss.header.Get("X-Request-Id") || m["request_id"] == "" ||
			m["url"] != bin+"/get?access_token=REDACTED" {
			t.Errorf("lane off=%v: miss line %v, X-Request-Id %q", noLane, m, miss.header.Get("X-Request-Id"))
		}
		for i := range 4 {
			id := "hit-" + string(rune('a'+i))
			hit := get(t, u, append(secrets, "X-Request-Id", id)...)
			wantCache(t, hit, "HIT")
			if got := hit.header.Get("X-Request-Id"); got != id {
				t.Errorf("lane off=%v: hit answered with X-Request-Id %q, sent %q", noLane, got, id)
			}
		}
		// Hits 2 and 4 of the four.
		for _, want := range []string{"hit-b", "hit-d"} {
			if m := lines.next(t); m["cache"] != "HIT" || m["request_id"] != want {
				t.Errorf("lane off=%v: sampled hit line %v, want request_id %s", noLane, m, want)
			}
		}
		stopServer(t, srv)
		select {
		case m := <-lines.c:
			t.Errorf("lane off=%v: a line too many: %v", noLane, m)
		default:
		}
		lines.mu.Lock()
		all := lines.all.String()
		lines.mu.Unlock()
		for _, s := range []string{"param-5ecret", "token-5ecret", "cookie-5ecret"} {
			if strings.Contains(all, s) {
				t.Errorf("lane off=%v: the access log holds %q:\n%s", noLane, s, all)
			}
		}
	}
}
