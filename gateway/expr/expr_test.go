package expr_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cachegate/cachegate/gateway/expr"
)

func mustURL(tb testing.TB, s string) *url.URL {
	tb.Helper()
	u, err := url.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

func TestKey(t *testing.T) {
	u := mustURL(t, "https://api.example.com/v1/Items?id=1&x=2&id=9")
	h := http.Header{"X-Tenant": {"a", "b"}, "Accept": {"*/*"}}
	tests := []struct {
		name, src, want string
		headers         bool
	}{
		{name: "issue example", src: `request.url.path + "?" + request.query["id"]`, want: "/v1/Items?1"},
		{name: "url parts", src: `request.method + " " + request.url.scheme + "://" + request.url.host + "?" + request.url.query`, want: "GET https://api.example.com?id=1&x=2&id=9"},
		{name: "header", src: `request.url.path + "|" + request.headers["x-tenant"]`, want: "/v1/Items|a, b", headers: true},
		{name: "string extensions", src: `request.url.path.lowerAscii().split("/")[2]`, want: "items"},
		{name: "optional", src: `request.query.?missing.orValue("none")`, want: "none"},
		{name: "in", src: `"x-tenant" in request.headers ? "t" : "n"`, want: "t", headers: true},
		{name: "absent", src: `"x-other" in request.headers ? "t" : "n"`, want: "n", headers: true},
		{name: "names are lower case", src: `"X-Tenant" in request.headers ? "t" : "n"`, want: "n", headers: true},
		{name: "has", src: `has(request.headers.accept) ? request.headers.accept : "none"`, want: "*/*", headers: true},
		{name: "every header", src: `request.headers.exists(k, k == "accept") ? "yes" : "no"`, want: "yes", headers: true},
		{name: "size", src: `string(size(request.headers))`, want: "2", headers: true},
		{name: "two names", src: `request.headers[?"accept"].orValue("") + request.headers[?"x-nope"].orValue("-")`, want: "*/*-", headers: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := expr.CompileKey(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.Eval(&expr.Input{Method: "GET", URL: u, Header: h})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if k.ReadsHeaders() != tt.headers {
				t.Errorf("ReadsHeaders = %v, want %v", k.ReadsHeaders(), tt.headers)
			}
		})
	}
}

// secretNames are secret in any case.
type secretNames []string

func (s secretNames) Secret(name string) bool {
	for _, n := range s {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

func TestKeySeesSecretsRedacted(t *testing.T) {
	in := &expr.Input{
		Method: "GET", URL: mustURL(t, "http://h/p?token=s3cret&id=1"), Query: "id=1&token=REDACTED",
		Header: http.Header{"Authorization": {"Bearer s3cret"}, "X-A": {"1"}}, Secrets: secretNames{"token", "authorization"},
	}
	for _, src := range []string{
		`request.query["token"] + request.url.query`,
		`request.headers["authorization"]`,
		`request.headers.exists(k, k == "authorization") ? request.headers["authorization"] : ""`,
	} {
		k, err := expr.CompileKey(src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := k.Eval(in)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(got, "s3cret") || !strings.Contains(got, "REDACTED") {
			t.Errorf("%s gave %q, want the secret redacted", src, got)
		}
	}
}

func TestKeyRuntimeError(t *testing.T) {
	k, err := expr.CompileKey(`request.query["id"]`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Eval(&expr.Input{Method: "GET", URL: mustURL(t, "http://h/p?x=1")}); err == nil {
		t.Fatal("missing key: want an error")
	}
}

func TestFilter(t *testing.T) {
	f, err := expr.CompileFilter(`response.status == 200 && !("x-debug" in request.headers) && response.size < 10 && response.headers["content-type"] == "text/plain"`)
	if err != nil {
		t.Fatal(err)
	}
	u := mustURL(t, "http://h/p")
	ct := http.Header{"Content-Type": {"text/plain"}}
	for _, tt := range []struct {
		name   string
		h      http.Header
		status int
		size   int64
		want   bool
	}{
		{"stores", nil, 200, 5, true},
		{"debug header", http.Header{"X-Debug": {"1"}}, 200, 5, false},
		{"status", nil, 404, 5, false},
		{"size", nil, 200, 50, false},
	} {
		got, err := f.Eval(&expr.Input{Method: "GET", URL: u, Header: tt.h}, tt.status, ct, tt.size)
		if err != nil {
			t.Fatal(tt.name, err)
		}
		if got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, src string
		filter    bool
		line, col int
	}{
		{name: "syntax", src: `request.url.path +`, line: 1, col: 19},
		{name: "unknown field", src: `request.url.pth`, line: 1, col: 12},
		{name: "unknown variable", src: "request.url.path +\n  nope", line: 2, col: 3},
		{name: "key gives int", src: `size(request.url.path)`, line: 1, col: 1},
		{name: "filter gives string", src: `request.method`, filter: true, line: 1, col: 1},
		{name: "key reads response", src: `string(response.status)`, line: 1, col: 1},
		{name: "empty", src: ` `, line: 1, col: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.filter {
				_, err = expr.CompileFilter(tt.src)
			} else {
				_, err = expr.CompileKey(tt.src)
			}
			var e *expr.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want an *expr.Error", err)
			}
			if e.Line != tt.line || e.Column != tt.col {
				t.Errorf("at %d:%d (%v), want %d:%d", e.Line, e.Column, e, tt.line, tt.col)
			}
		})
	}
}

// Evaluations share pooled state: concurrent ones must not see each
// other's request.
func TestKeyConcurrent(t *testing.T) {
	k, err := expr.CompileKey(`request.url.path + "|" + request.query["id"] + "|" + request.headers["x-tenant"]`)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				id := strconv.Itoa(g*1000 + i)
				in := &expr.Input{Method: "GET", URL: mustURL(t, "http://h/p"+id+"?id="+id), Header: http.Header{"X-Tenant": {id}}}
				got, err := k.Eval(in)
				if want := "/p" + id + "|" + id + "|" + id; err != nil || got != want {
					errs <- fmt.Errorf("got %q (%v), want %q", got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
