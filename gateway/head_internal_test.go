package gateway

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

// headServer is a net/http server whose one handler sets the fields and
// writes the body it is given, as ServeHTTP writes an answer from the
// cache: the reference appendHead must match.
type headServer struct {
	srv *httptest.Server

	mu     sync.Mutex
	status int
	fields http.Header
	body   []byte
}

func newHeadServer(t testing.TB) *headServer {
	hs := &headServer{}
	hs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs.mu.Lock()
		defer hs.mu.Unlock()
		for k, v := range hs.fields {
			w.Header()[k] = v
		}
		w.WriteHeader(hs.status)
		w.Write(hs.body)
	}))
	hs.srv.Config.ErrorLog = nil
	t.Cleanup(hs.srv.Close)
	return hs
}

// answer returns net/http's bytes for the answer, without the Connection
// field it adds for the test's Connection: close request (the lane only
// answers keep-alive requests).
func (hs *headServer) answer(t testing.TB, status int, fields http.Header, body []byte) string {
	t.Helper()
	hs.mu.Lock()
	hs.status, hs.fields, hs.body = status, fields, body
	hs.mu.Unlock()
	c, err := net.Dial("tcp", hs.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return connectionClose.ReplaceAllString(string(b), "")
}

var (
	connectionClose = regexp.MustCompile(`(?m)^Connection: close\r\n`)
	dateLine        = regexp.MustCompile(`(?m)^Date: .*\r\n`)
)

// rendered is appendHead's answer, with the request ID at IDAt, as the
// lane sends it.
func rendered(status int, fields http.Header, body []byte, id string) string {
	head, at := appendHead(nil, status, fields, body, time.Now())
	s := string(head[:at])
	if id != "" {
		s += RequestIDHeader + ": " + id + "\r\n"
	}
	return s + string(head[at:]) + string(body)
}

// sameAsNetHTTP checks appendHead against net/http for one answer; the
// fields get a Content-Length, and, for the reference, the request ID.
func sameAsNetHTTP(t *testing.T, hs *headServer, status int, fields http.Header, body []byte, id string) {
	t.Helper()
	fields = fields.Clone()
	if fields == nil {
		fields = http.Header{}
	}
	fields["Content-Length"] = []string{strconv.Itoa(len(body))}
	ref := fields.Clone()
	delete(ref, RequestIDHeader)
	if id != "" {
		ref[RequestIDHeader] = []string{id}
	}
	for range 3 { // a second may turn between the two, changing Date
		want := hs.answer(t, status, ref, body)
		got := rendered(status, fields, body, id)
		if got == want {
			return
		}
		if dateLine.ReplaceAllString(got, "") != dateLine.ReplaceAllString(want, "") {
			t.Fatalf("appendHead rendered\n%q\nnet/http wrote\n%q", got, want)
		}
	}
	t.Fatal("Date differs three times in a row")
}

func TestAnswerHeadAsNetHTTP(t *testing.T) {
	hs := newHeadServer(t)
	json := http.Header{"Content-Type": {"application/json"}}
	for name, c := range map[string]struct {
		status int
		fields http.Header
		body   string
		id     string
	}{
		"plain":                 {200, json, `{"a":1}`, ""},
		"with an id":            {200, json, `{}`, "abc-123"},
		"id sorts first":        {200, http.Header{"Zzz": {"1"}, "Aaa": {"2"}}, "x", "id"},
		"id sorts last":         {200, http.Header{"Aaa": {"2"}}, "x", "id"},
		"stored id replaced":    {200, http.Header{RequestIDHeader: {"old"}, "Content-Type": {"text/plain"}}, "x", "new"},
		"stored id, none now":   {200, http.Header{RequestIDHeader: {"old"}, "Content-Type": {"text/plain"}}, "x", ""},
		"sniffed type":          {200, nil, "<html><body>hi", ""},
		"encoded, not sniffed":  {200, http.Header{"Content-Encoding": {"gzip"}}, "\x1f\x8b", ""},
		"blank encoding":        {200, http.Header{"Content-Encoding": {""}}, "<html>", ""},
		"empty body":            {200, nil, "", ""},
		"own date":              {200, http.Header{"Date": {"Mon, 01 Jan 2024 00:00:00 GMT"}}, "x", ""},
		"odd values":            {200, http.Header{"X-Odd": {"a\r\nb", "  spaced  ", "\r\nedge\n"}}, "x", ""},
		"bad name dropped":      {200, http.Header{"Bad Name": {"dropped"}, "X-Ok": {"1"}}, "x", ""},
		"unknown status":        {299, json, "x", ""},
		"not found":             {404, json, "gone", ""},
		"permanent redirect":    {301, http.Header{"Location": {"/elsewhere"}}, "", ""},
		"several values":        {200, http.Header{"Vary": {"Accept", "Accept-Language"}}, "x", ""},
		"lower-case field name": {200, http.Header{"x-lower": {"1"}}, "x", ""},
	} {
		t.Run(name, func(t *testing.T) { sameAsNetHTTP(t, hs, c.status, c.fields, []byte(c.body), c.id) })
	}
}

// FuzzAnswerHeadAsNetHTTP varies the status, a field and the body of an
// answer and checks that appendHead renders what net/http writes (make
// fuzz runs it).
func FuzzAnswerHeadAsNetHTTP(f *testing.F) {
	f.Add(200, "Content-Type", "text/plain", []byte("hello"), "id-1")
	f.Add(203, "X-Odd", "a\r\nb ", []byte("<html>"), "")
	f.Add(599, "Content-Encoding", "", []byte{0x1f, 0x8b, 0}, "z")
	f.Add(200, "Date", "yesterday", []byte(""), "")
	hs := newHeadServer(f)
	f.Fuzz(func(t *testing.T, status int, name, value string, body []byte, id string) {
		if status < 200 || status > 999 || !BodyAllowed(status) {
			return // appendHead is only for these (headRenderable)
		}
		switch http.CanonicalHeaderKey(name) {
		case "Content-Length", "Transfer-Encoding", "Connection", "Trailer":
			return // not in a renderable entry, or set by setEntryFields
		}
		if len(name) > 0 && name[0] >= 0x80 || len(id) > 0 && !saneRequestID(id) {
			return // the request ID is one RequestID lets through
		}
		fields := http.Header{name: {value}}
		if http.CanonicalHeaderKey(name) != name {
			return // a handler's field names are the stored, canonical ones
		}
		sameAsNetHTTP(t, hs, status, fields, body, id)
	})
}
