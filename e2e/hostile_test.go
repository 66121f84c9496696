package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/web"
)

// recorder is an upstream that records every request it receives and
// answers a cacheable text echoing the request line.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex // protects seen
	seen []seenRequest
}

type seenRequest struct {
	method, host, uri string
}

func startRecorder(tb testing.TB) *recorder {
	tb.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen = append(rec.seen, seenRequest{r.Method, r.Host, r.RequestURI})
		rec.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "%s %s\n", r.Method, r.RequestURI)
	}))
	tb.Cleanup(rec.Close)
	return rec
}

func (r *recorder) requests() []seenRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seenRequest(nil), r.seen...)
}

// trap is a listener no request may ever reach: the hostile requests name
// its address as the host to go to.
type trap struct {
	ln       net.Listener
	mu       sync.Mutex // protects accepted
	accepted int
	done     chan struct{}
}

func startTrap(tb testing.TB) *trap {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tr := &trap{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tr.mu.Lock()
			tr.accepted++
			tr.mu.Unlock()
			c.Close()
		}
	}()
	return tr
}

// stop closes the trap and returns how many connections it accepted.
func (tr *trap) stop() int {
	tr.ln.Close()
	<-tr.done
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.accepted
}

// lockedBuffer collects the server's log.
type lockedBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// after ends every request script: a plain request that closes the
// connection, so each answer is read to its end, and which shows that the
// server still answers on a connection after what came before it.
const after = "GET /fetch/demo/after HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"

// hostileCase is one request script; EVIL in it is replaced with the trap's
// address and UP with the upstream's.
type hostileCase struct {
	name string
	raw  string
	// noAfter leaves out the closing request: the input is too large for
	// the server to read on after it.
	noAfter bool
	// want, when set, is the status line the first answer must carry.
	want string
}

func get1(p string, headers ...string) string {
	return "GET " + p + " HTTP/1.1\r\nHost: gw\r\n" + strings.Join(headers, "") + "\r\n"
}

func hostileCases() []hostileCase {
	big := strings.Repeat("a", 2<<20)
	smuggled := "GET /fetch/demo/%2e%2e/x HTTP/1.1\r\nHost: gw\r\n\r\n"
	many := strings.Repeat("X-Many: 0123456789012345678901234567890123456789\r\n", 30000)
	cases := []hostileCase{
		// Path traversal and its encodings.
		{name: "dotdot", raw: get1("/fetch/demo/../../etc/passwd")},
		{name: "dotdot encoded", raw: get1("/fetch/demo/%2e%2e/%2e%2e/etc/passwd")},
		{name: "dotdot encoded upper", raw: get1("/fetch/demo/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd")},
		{name: "encoded slash", raw: get1("/fetch/demo/a%2f..%2f..%2fetc")},
		{name: "double encoded", raw: get1("/fetch/demo/%252e%252e%252fetc")},
		{name: "encoded backslash", raw: get1("/fetch/demo/..%5c..%5cetc")},
		{name: "backslash", raw: get1(`/fetch/demo/..\..\etc`)},
		{name: "mixed dot", raw: get1("/fetch/demo/.%2e/x")},
		{name: "single dot", raw: get1("/fetch/demo/./hit")},
		{name: "trailing dot", raw: get1("/fetch/demo/hit/%2e")},
		{name: "overlong utf8 dots", raw: get1("/fetch/demo/%c0%ae%c0%ae/etc")},
		{name: "encoded NUL", raw: get1("/fetch/demo/a%00b")},
		{name: "raw NUL", raw: get1("/fetch/demo/a\x00b")},
		{name: "raw 8-bit", raw: get1("/fetch/demo/\xff\xfe")},
		{name: "bad escape", raw: get1("/fetch/demo/%zz")},
		{name: "climb the upstream name", raw: get1("/fetch/..%2fdemo/get")},
		{name: "dotdot upstream", raw: get1("/fetch/%2e%2e/demo")},
		{name: "encoded upstream slash", raw: get1("/fetch/demo%2fhit")},
		{name: "upstream named as host", raw: get1("/fetch/EVIL/x")},
		{name: "double slash host", raw: get1("/fetch/demo//EVIL/x")},
		{name: "userinfo host", raw: get1("/fetch/demo/@EVIL/x")},
		{name: "encoded userinfo", raw: get1("/fetch/demo/%40EVIL/x")},
		{name: "semicolon userinfo", raw: get1("/fetch/demo/;@EVIL/x")},
		{name: "absolute URL in path", raw: get1("/fetch/demo/http://EVIL/")},
		{name: "encoded query in path", raw: get1("/fetch/demo/hit%3F@EVIL")},
		{name: "fragment", raw: get1("/fetch/demo/hit?x=1#@EVIL")},
		{name: "leading double slash", raw: get1("//fetch/demo/hit")},
		{name: "no leading slash", raw: get1("fetch/demo/hit")},
		{name: "upper-case prefix", raw: get1("/FETCH/demo/hit")},

		// Request lines the gateway must never proxy.
		{name: "absolute URI elsewhere", raw: "GET http://EVIL/ HTTP/1.1\r\nHost: EVIL\r\n\r\n"},
		{name: "absolute URI with gateway path", raw: "GET http://EVIL/fetch/demo/hit HTTP/1.1\r\nHost: EVIL\r\n\r\n"},
		{name: "absolute URI to the upstream", raw: "GET http://UP/base/x HTTP/1.1\r\nHost: UP\r\n\r\n"},
		{name: "absolute https URI", raw: "GET https://EVIL/fetch/demo/hit HTTP/1.1\r\nHost: gw\r\n\r\n"},
		{name: "CONNECT", raw: "CONNECT EVIL HTTP/1.1\r\nHost: EVIL\r\n\r\n"},
		{name: "CONNECT path", raw: "CONNECT /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\n\r\n", want: "HTTP/1.1 405"},
		{name: "TRACE", raw: "TRACE /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nX-Secret: s\r\n\r\n", want: "HTTP/1.1 405"},
		{name: "OPTIONS star", raw: "OPTIONS * HTTP/1.1\r\nHost: gw\r\n\r\n"},
		{name: "GET star", raw: "GET * HTTP/1.1\r\nHost: gw\r\n\r\n"},
		{name: "lower-case method", raw: "get /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\n\r\n"},
		{name: "odd method", raw: "G@T /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\n\r\n"},
		{name: "PUT", raw: "PUT /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\n\r\nabc"},
		{name: "HTTP/2 preface", raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", noAfter: true},
		{name: "HTTP/2.0 line", raw: "GET /fetch/demo/hit HTTP/2.0\r\nHost: gw\r\n\r\n"},
		{name: "HTTP/1.0 no host", raw: "GET /fetch/demo/hit HTTP/1.0\r\n\r\n"},
		{name: "HTTP/0.9", raw: "GET /fetch/demo/hit\r\n\r\n"},
		{name: "HTTP/1.1 no host", raw: "GET /fetch/demo/hit HTTP/1.1\r\n\r\n"},
		{name: "HTTP/9.9", raw: "GET /fetch/demo/hit HTTP/9.9\r\nHost: gw\r\n\r\n"},
		{name: "double spaces", raw: "GET  /fetch/demo/hit  HTTP/1.1\r\nHost: gw\r\n\r\n"},
		{name: "tabs", raw: "GET\t/fetch/demo/hit\tHTTP/1.1\r\nHost: gw\r\n\r\n"},
		{name: "bare LF", raw: "GET /fetch/demo/hit HTTP/1.1\nHost: gw\n\n"},
		{name: "bare CR", raw: "GET /fetch/demo/hit HTTP/1.1\rHost: gw\r\n\r\n"},
		{name: "leading empty lines", raw: "\r\n\r\nGET /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\n\r\n"},
		{name: "TLS hello", raw: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", noAfter: true},

		// Oversized heads.
		{name: "2 MiB header", raw: get1("/fetch/demo/hit", "X-Big: "+big+"\r\n"), noAfter: true},
		{name: "2 MiB URI", raw: get1("/fetch/demo/hit?" + big), noAfter: true},
		{name: "30000 headers", raw: get1("/fetch/demo/hit", many), noAfter: true},
		{name: "9 KiB header", raw: get1("/fetch/demo/hit", "X-Long: "+big[:9<<10]+"\r\n")},
		{name: "long name", raw: get1("/fetch/demo/hit", big[:9<<10]+": x\r\n")},

		// Smuggling shapes.
		{name: "CL and TE", raw: "POST /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{name: "TE and CL on GET", raw: "GET /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\nGET /fetch/demo/../x HTTP/1.1\r\n"},
		{name: "CL body is a request", raw: "GET /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nContent-Length: " + strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled},
		{name: "CL shorter than the body", raw: "GET /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\n\r\n" + smuggled},
		{name: "pipelined after a body", raw: "POST /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\n\r\nabc" + smuggled},
		{name: "chunked GET", raw: "GET /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{name: "duplicate CL differing", raw: "POST /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
		{name: "duplicate CL same", raw: "POST /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"},
		{name: "CL list", raw: "POST /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nContent-Length: 3, 3\r\n\r\nabc"},
		{name: "CL plus", raw: "POST /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nContent-Length: +3\r\n\r\nabc"},
		{name: "CL negative", raw: "POST /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nContent-Length: -1\r\n\r\n"},
		{name: "CL hex", raw: "POST /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nContent-Length: 0x3\r\n\r\nabc"},
		{name: "CL huge", raw: "POST /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nContent-Length: 99999999999999999999\r\n\r\n"},
		{name: "TE identity", raw: "POST /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc"},
		{name: "TE chunked, identity", raw: "POST /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"},
		{name: "TE xchunked", raw: "POST /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"},
		{name: "TE twice", raw: "POST /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{name: "TE obs-fold", raw: "POST /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"},
		{name: "TE space before colon", raw: "POST /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"},
		{name: "bad chunk size", raw: "POST /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"},
		{name: "obs-fold header", raw: get1("/fetch/demo/hit", "X-A: a\r\n b\r\n")},
		{name: "obs-fold host", raw: "GET /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\n EVIL\r\n\r\n"},
		{name: "NUL in header value", raw: get1("/fetch/demo/hit", "X-A: a\x00b\r\n")},
		{name: "CR in header value", raw: get1("/fetch/demo/hit", "X-A: a\rb\r\n")},
		{name: "bad header name", raw: get1("/fetch/demo/hit", "X A: b\r\n")},
		{name: "header without colon", raw: get1("/fetch/demo/hit", "nocolon\r\n")},
		{name: "expect continue", raw: get1("/fetch/demo/hit", "Expect: 100-continue\r\n")},
		{name: "expect other", raw: get1("/fetch/demo/hit", "Expect: 999-nope\r\n")},
		{name: "upgrade websocket", raw: get1("/fetch/demo/hit", "Connection: Upgrade\r\nUpgrade: websocket\r\n")},
		{name: "upgrade h2c", raw: get1("/fetch/demo/hit", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n")},

		// Host header games.
		{name: "host evil", raw: "GET /fetch/demo/hit HTTP/1.1\r\nHost: EVIL\r\n\r\n"},
		{name: "two hosts", raw: "GET /fetch/demo/hit HTTP/1.1\r\nHost: gw\r\nHost: EVIL\r\n\r\n"},
		{name: "host userinfo", raw: "GET /fetch/demo/hit HTTP/1.1\r\nHost: gw@EVIL\r\n\r\n"},
		{name: "host empty", raw: "GET /fetch/demo/hit HTTP/1.1\r\nHost:\r\n\r\n"},
		{name: "host with path", raw: "GET /fetch/demo/hit HTTP/1.1\r\nHost: EVIL/fetch\r\n\r\n"},
		{name: "host bad port", raw: "GET /fetch/demo/hit HTTP/1.1\r\nHost: [::1]:x\r\n\r\n"},
		{name: "forwarded host", raw: get1("/fetch/demo/hit", "X-Forwarded-Host: EVIL\r\nForwarded: host=EVIL;proto=https\r\nX-Forwarded-Proto: https\r\n")},
		{name: "forwarded on a miss", raw: get1("/fetch/demo/fwd", "X-Forwarded-Host: EVIL\r\nX-Original-URL: http://EVIL/\r\nX-Rewrite-URL: http://EVIL/\r\n")},
		{name: "absolute URI and host", raw: "GET http://gw/fetch/demo/hit HTTP/1.1\r\nHost: EVIL\r\n\r\n"},

		// Cache headers with hostile values.
		{name: "bad expire-after", raw: get1("/fetch/demo/hit", "X-Cachegate-Expire-After: forever-ish\r\n")},
		{name: "huge max-age", raw: get1("/fetch/demo/hit", "Cache-Control: max-age=99999999999999999999\r\n")},
		{name: "huge range", raw: get1("/fetch/demo/hit", "Range: bytes=99999999999999999999-\r\n")},
		{name: "many ranges", raw: get1("/fetch/demo/hit", "Range: bytes="+strings.Repeat("0-0,", 2000)+"0-0\r\n")},
		{name: "huge if-none-match", raw: get1("/fetch/demo/hit", "If-None-Match: "+strings.Repeat(`"x",`, 1500)+"\"y\"\r\n")},
		{name: "credential on a hit", raw: get1("/fetch/demo/hit", "Authorization: Bearer other\r\n")},
		{name: "hop-by-hop list", raw: get1("/fetch/demo/hit", "Connection: Authorization, Host, X-Forwarded-For\r\n")},
	}
	return cases
}

// converse writes script on a fresh connection and reads until the server
// closes it. A reset after the answer counts as the end.
func converse(tb testing.TB, addr, script string) string {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	// A bound, not a wait: every script ends in a request that closes the
	// connection, or in one the server refuses.
	c.SetDeadline(time.Now().Add(20 * time.Second))
	// Write while reading: a server refusing a huge head stops reading it.
	go io.WriteString(c, script)
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		tb.Fatalf("no end of the answer within 20s; got %q", truncate(string(b), 300))
	}
	return string(b)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

var (
	dateLine = regexp.MustCompile(`(?m)^Date: .*\r\n`)
	ageLine  = regexp.MustCompile(`(?m)^Age: \d+\r\n`)
	ttlValue = regexp.MustCompile(`ttl=\d+`)
	csrfMeta = regexp.MustCompile(`name="csrf-token" content="[^"]*"`)
	// htmlBody is a chunked HTML page's body, to its last chunk.
	htmlBody = regexp.MustCompile(`(?s)\r\n\r\n[0-9a-f]+\r\n<!doctype html>.*?</html>\r\n(?:0\r\n\r\n)?`)
	// statusLines finds the status line of each answer.
	statusLines = regexp.MustCompile(`(?m)^HTTP/1\.\d \d{3}`)
)

// Hostile requests against /fetch/, with the fast lane on and off: none
// reaches a host but the configured upstream or a path outside its prefix,
// none crashes the server, and the answers are the same bytes either way.
func TestHostileRequests(t *testing.T) {
	up := startRecorder(t)
	evil := startTrap(t)
	upURL, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	open := func(noLane bool) *web.Server {
		cfg := web.Config{Listen: "127.0.0.1:0", Backend: sqliteDSN(t), ExpireAfter: cache.Expiry(time.Hour), NoFastLane: noLane,
			Upstreams: []web.UpstreamConfig{upstream("demo", up.URL+"/base")}}
		srv, err := web.Open(context.Background(), cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve() }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Close(ctx); err != nil {
				t.Errorf("close: %v", err)
			}
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
		return srv
	}
	on, off := open(false), open(true)
	for _, srv := range []*web.Server{on, off} {
		// The hit most scripts ask for, held in memory: the lane's to answer.
		wantCache(t, get(t, srv.URL()+"/fetch/demo/hit"), "MISS")
		wantCache(t, get(t, srv.URL()+"/fetch/demo/hit"), "HIT")
	}
	lanesBefore := on.FastLaneAnswers()

	cases := hostileCases()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			script := strings.NewReplacer("EVIL", evil.ln.Addr().String(), "UP", upURL.Host).Replace(c.raw)
			if !c.noAfter {
				script += after
			}
			answers := map[string]string{}
			for name, srv := range map[string]*web.Server{"with the lane": on, "without": off} {
				a := converse(t, strings.TrimPrefix(srv.URL(), "http://"), script)
				a = dateLine.ReplaceAllString(a, "Date: *\r\n")
				a = ageLine.ReplaceAllString(a, "Age: *\r\n")
				a = requestIDField.ReplaceAllString(a, "")
				// Each server keys its anonymous CSRF tokens with its own secret.
				a = csrfMeta.ReplaceAllString(a, `name="csrf-token" content="*"`)
				// An admin page (the overview) shows live figures: its status
				// and headers must agree, its body cannot.
				a = htmlBody.ReplaceAllString(a, "\r\n\r\n<page>\r\n")
				answers[name] = ttlValue.ReplaceAllString(a, "ttl=*")
			}
			if a, b := answers["with the lane"], answers["without"]; a != b {
				t.Fatalf("with the fast lane:\n%s\nwithout:\n%s", truncate(a, 3000), truncate(b, 3000))
			}
			a := answers["without"]
			if !strings.HasPrefix(a, "HTTP/1.") {
				t.Fatalf("no HTTP answer: %q", truncate(a, 300))
			}
			if c.want != "" && !strings.HasPrefix(a, c.want) {
				t.Fatalf("answer %q, want %s", truncate(a, 300), c.want)
			}
			// The upstream is healthy: a 500, 502, 503 or 504 would be the
			// gateway failing, or blaming the upstream for what the client
			// sent. (net/http answers 501 to a transfer coding it lacks.)
			if m := regexp.MustCompile(`HTTP/1\.. 50[0234]`).FindString(a); m != "" {
				t.Fatalf("a %s answer:\n%s", m, truncate(a, 3000))
			}
			if strings.Contains(a, "X-Secret") {
				t.Fatalf("TRACE echoed the request:\n%s", truncate(a, 3000))
			}
			t.Logf("%s", strings.Join(statusLines.FindAllString(a, -1), " | "))
		})
	}
	t.Logf("%d hostile inputs, each sent with and without the fast lane; the lane answered %d of them", len(cases), on.FastLaneAnswers()-lanesBefore)

	// Nothing reached another host.
	if n := evil.stop(); n != 0 {
		t.Errorf("the trap listener accepted %d connections", n)
	}
	prefix := "/base"
	for _, r := range up.requests() {
		if r.host != upURL.Host {
			t.Errorf("the upstream got Host %q for %s %s", r.host, r.method, r.uri)
		}
		u, err := url.ParseRequestURI(r.uri)
		if err != nil {
			t.Errorf("the upstream got request URI %q: %v", r.uri, err)
			continue
		}
		dec, err := url.PathUnescape(u.EscapedPath())
		if err != nil {
			t.Errorf("the upstream got path %q: %v", r.uri, err)
			continue
		}
		if p := path.Clean(strings.ReplaceAll(dec, `\`, "/")); p != prefix && !strings.HasPrefix(p, prefix+"/") {
			t.Errorf("the upstream got %q, which resolves to %q outside %s", r.uri, p, prefix)
		}
		if strings.ContainsRune(dec, 0) {
			t.Errorf("the upstream got a NUL byte in %q", r.uri)
		}
	}
	for _, srv := range []*web.Server{on, off} {
		if resp := get(t, srv.URL()+"/healthz"); resp.status != http.StatusOK {
			t.Errorf("healthz after the hostile requests: %d", resp.status)
		}
	}
	if s := logs.String(); strings.Contains(s, "msg=panic") {
		t.Errorf("a panic was logged:\n%s", truncate(s, 5000))
	}
}

// A bulk body whose filter holds only blank values, or bounds that bound
// nothing, selects nothing: it is refused like an empty one, and no entry
// is deleted. (Each once passed the empty-selection check and then matched
// every entry.)
func TestHostileBulkSelections(t *testing.T) {
	up := startRecorder(t)
	srv := startServer(t, web.Config{Backend: "memory://", Upstreams: []web.UpstreamConfig{upstream("demo", up.URL)}})
	for i := range 3 {
		wantCache(t, get(t, fmt.Sprintf("%s/fetch/demo/e%d", srv.URL(), i)), "MISS")
	}
	c := newAPI(t, srv)
	for _, filter := range []map[string]any{
		{"upstream": " "},
		{"url": "\t", "method": "  "},
		{"base_key": " ", "content_type": "\n"},
		{"min_size": "0"},
		{"min_size": 0, "max_size": "0B"},
	} {
		c.wantError("POST", "/api/delete", map[string]any{"filter": filter}, http.StatusBadRequest, "empty_selection")
	}
	var list struct {
		Total struct {
			Entries int `json:"entries"`
		} `json:"total"`
	}
	c.json("GET", "/api/entries", nil, http.StatusOK, &list)
	if list.Total.Entries != 3 {
		t.Fatalf("%d entries left, want all 3", list.Total.Entries)
	}
}
