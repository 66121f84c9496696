package static_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/cachegate/cachegate/static"
)

// serve runs one request against the asset handler the way MountPages
// mounts it.
func serve(tb testing.TB, method, path string, header ...string) *httptest.ResponseRecorder {
	tb.Helper()
	h := http.StripPrefix("/static", static.Handler())
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestURLIsContentAddressed(t *testing.T) {
	for _, name := range []string{"css/app.css", "js/app.js", "js/live.js", "vendor/htmx/htmx.min.js"} {
		u := static.URL(name)
		ext := path.Ext(name)
		want := regexp.MustCompile(`^/static/` + regexp.QuoteMeta(strings.TrimSuffix(name, ext)) + `\.[0-9a-f]{10}` + regexp.QuoteMeta(ext) + `$`)
		if !want.MatchString(u) {
			t.Errorf("URL(%q) = %q, want %s", name, u, want)
		}
	}
	if a, b := static.URL("js/app.js"), static.URL("js/live.js"); a == b {
		t.Fatalf("two files share the URL %q", a)
	}
}

func TestURLPanicsOnAMissingAsset(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("URL of a missing asset did not panic")
		}
	}()
	static.URL("css/nope.css")
}

func TestHandler(t *testing.T) {
	css := static.URL("css/app.css")
	tests := []struct {
		name, method, path, encoding string
		status                       int
		gzipped                      bool
	}{
		{"plain", "GET", css, "", 200, false},
		{"gzip", "GET", css, "gzip, deflate, br", 200, true},
		{"gzip refused", "GET", css, "gzip;q=0, identity", 200, false},
		{"star", "GET", css, "*", 200, true},
		{"head", "HEAD", css, "", 200, false},
		{"unhashed name", "GET", "/static/css/app.css", "", 404, false},
		{"outdated hash", "GET", "/static/css/app.0123456789.css", "", 404, false},
		{"unknown", "GET", "/static/css/other.css", "", 404, false},
		{"climbing out", "GET", "/static/../static.go", "", 404, false},
		{"post", "POST", css, "", 405, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, tt.method, tt.path, "Accept-Encoding", tt.encoding)
			if got, want := rec.Code, tt.status; got != want {
				t.Fatalf("status = %d, want %d", got, want)
			}
			if tt.status != 200 {
				return
			}
			h := rec.Header()
			if got, want := h.Get("Cache-Control"), "public, max-age=31536000, immutable"; got != want {
				t.Errorf("Cache-Control = %q, want %q", got, want)
			}
			if got, want := h.Get("Content-Type"), "text/css; charset=utf-8"; got != want {
				t.Errorf("Content-Type = %q, want %q", got, want)
			}
			if got := h.Get("Vary"); got != "Accept-Encoding" {
				t.Errorf("Vary = %q", got)
			}
			if gz := h.Get("Content-Encoding") == "gzip"; gz != tt.gzipped {
				t.Fatalf("gzipped = %v, want %v", gz, tt.gzipped)
			}
			if tt.method == "HEAD" {
				if rec.Body.Len() != 0 {
					t.Fatalf("HEAD answered %d body bytes", rec.Body.Len())
				}
				return
			}
			body := rec.Body.Bytes()
			if tt.gzipped {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Contains(body, []byte("prefers-color-scheme")) {
				t.Fatalf("body is not the stylesheet: %.80q", body)
			}
		})
	}
}

func TestHandlerRevalidatesByHash(t *testing.T) {
	u := static.URL("js/app.js")
	etag := serve(t, "GET", u).Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if got := serve(t, "GET", u, "If-None-Match", etag).Code; got != http.StatusNotModified {
		t.Fatalf("If-None-Match with the ETag: %d, want 304", got)
	}
}

// TestPageAssetsAreSmall keeps the weight of what every page loads, compressed,
// well under the 100 KB a page may weigh with its HTML.
func TestPageAssetsAreSmall(t *testing.T) {
	total := 0
	for _, name := range []string{"css/app.css", "js/app.js", "js/live.js", "vendor/htmx/htmx.min.js"} {
		total += static.Size(name)
	}
	if total > 60_000 {
		t.Fatalf("page assets weigh %d bytes compressed, want at most 60000", total)
	}
	t.Logf("page assets: %d bytes compressed", total)
}

// Every rule of the stylesheet closes: one brace lost in a merge silently
// swallows every rule after it.
func TestStylesheetBracesBalance(t *testing.T) {
	body := serve(t, http.MethodGet, static.URL("css/app.css")).Body.String()
	depth := 0
	for i, line := range strings.Split(body, "\n") {
		depth += strings.Count(line, "{") - strings.Count(line, "}")
		if depth < 0 {
			t.Fatalf("line %d closes a brace that was never opened", i+1)
		}
	}
	if depth != 0 {
		t.Fatalf("%d braces left open at the end of app.css", depth)
	}
}
