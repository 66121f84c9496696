package e2e_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/web"
)

// The fast lane is on by default and must not change a single byte of
// what a client gets: the same requests on one keep-alive connection, to
// a server with the lane and one without, get the same answers.
func TestFastLaneAnswersAsWithout(t *testing.T) {
	bin := startHTTPBin(t)
	on := startServer(t, web.Config{Backend: sqliteDSN(t), Upstreams: []web.UpstreamConfig{upstream("bin", bin)}})
	off := startServer(t, web.Config{Backend: sqliteDSN(t), Upstreams: []web.UpstreamConfig{upstream("bin", bin)}, NoFastLane: true})

	paths := []string{"/fetch/bin/get?a=1", "/fetch/bin/json", "/fetch/bin/bytes/100000?seed=1", "/fetch/bin/html", "/fetch/bin/status/204"}
	for _, srv := range []*web.Server{on, off} {
		for _, p := range paths {
			get(t, srv.URL()+p) // store
		}
	}
	var script strings.Builder
	for _, p := range paths {
		script.WriteString("GET " + p + " HTTP/1.1\r\nHost: gw\r\nUser-Agent: t\r\n\r\n")
		script.WriteString("HEAD " + p + " HTTP/1.1\r\nHost: gw\r\n\r\n")
	}
	script.WriteString("GET /fetch/bin/get?a=1 HTTP/1.1\r\nHost: gw\r\nCache-Control: no-cache\r\n\r\n") // revalidated, not a lane answer
	script.WriteString("GET /fetch/bin/get?a=1 HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")

	answers := func(srv *web.Server) string {
		c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL(), "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, script.String()); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(bufio.NewReader(c))
		if err != nil {
			t.Fatal(err)
		}
		return normalizeAnswers(b)
	}
	beforeOn := on.Gateway().Stats().Snapshot().Total
	// httpbin echoes the gateway's address (X-Forwarded-Host) in bodies.
	withLane := strings.ReplaceAll(answers(on), strings.TrimPrefix(on.URL(), "http://"), "GW")
	without := strings.ReplaceAll(answers(off), strings.TrimPrefix(off.URL(), "http://"), "GW")
	if withLane != without {
		t.Fatalf("with the fast lane:\n%.3000s\nwithout:\n%.3000s", withLane, without)
	}
	// GET and HEAD of each cacheable path (a 204 is not stored), and the
	// last request.
	const hits = 2*4 + 1
	if n := strings.Count(withLane, "X-Cache: HIT"); n != hits {
		t.Fatalf("%d hits, want %d:\n%.2000s", n, hits, withLane)
	}
	if got := on.Gateway().Stats().Snapshot().Total.Hits - beforeOn.Hits; got != hits {
		t.Fatalf("the lane's hits were counted as %d, want %d", got, hits)
	}
	// Every GET hit but the last (Connection: close is net/http's to
	// honour) was the lane's; HEAD and the no-cache request went to
	// net/http.
	if got := on.FastLaneAnswers(); got != 4 {
		t.Errorf("the lane answered %d requests, want 4", got)
	}
	if got := off.FastLaneAnswers(); got != 0 {
		t.Errorf("the server without the lane answered %d requests in it", got)
	}
	if resp := get(t, on.URL()+"/healthz"); resp.status != http.StatusOK {
		t.Fatalf("healthz after: %d", resp.status)
	}
}

var (
	dateField = regexp.MustCompile(`(?m)^Date: .*\r\n`)
	ttl       = regexp.MustCompile(`ttl=\d+`)
	ageField  = regexp.MustCompile(`(?m)^Age: \d+\r\n`)
)

// requestIDField is X-Request-Id, whose value differs from answer to
// answer: the comparisons keep the field and its place, not its value.
var requestIDField = regexp.MustCompile(`(?m)^X-Request-Id: .*\r\n`)

func normalizeAnswers(b []byte) string {
	s := dateField.ReplaceAllString(string(b), "Date: *\r\n")
	s = requestIDField.ReplaceAllString(s, "X-Request-Id: *\r\n")
	s = ttl.ReplaceAllString(s, "ttl=*")
	return ageField.ReplaceAllString(s, "Age: *\r\n")
}
