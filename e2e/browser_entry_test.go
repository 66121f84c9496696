package e2e_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachegate/cachegate/web"
	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// reply is what liveOrigin sends for one path.
type reply struct {
	contentType, etag string
	status            int
	body              []byte
}

// liveOrigin is an upstream whose answers the test changes between
// requests. A request with the reply's ETag in If-None-Match gets a 304.
type liveOrigin struct {
	mu      sync.Mutex // protects replies
	replies map[string]reply
}

func (o *liveOrigin) set(path string, r reply) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.replies[path] = r
}

func (o *liveOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	rp, ok := o.replies[r.URL.Path]
	o.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", rp.contentType)
	if rp.etag != "" {
		w.Header().Set("ETag", rp.etag)
		if r.Header.Get("If-None-Match") == rp.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	if rp.status != 0 {
		w.WriteHeader(rp.status)
	}
	_, _ = w.Write(rp.body)
}

// entryServer is cachegate over a SQLite file with the upstream "live"
// served by a liveOrigin.
type entryServer struct {
	srv    *web.Server
	origin *liveOrigin
	token  string
}

func startEntryServer(tb testing.TB) *entryServer {
	tb.Helper()
	return startEntryServerWithToken(tb, "")
}

// startEntryServerWithToken is startEntryServer with an admin token: the
// pages then need a signed-in session.
func startEntryServerWithToken(tb testing.TB, token string) *entryServer {
	tb.Helper()
	o := &liveOrigin{replies: map[string]reply{}}
	up := httptest.NewServer(o)
	tb.Cleanup(up.Close)
	cfg := upstream("live", up.URL)
	cfg.Policy.IgnoredParameters = []string{"api_key"}
	cfg.Policy.MatchHeaders = []string{"Accept-Language"}
	srv := startServer(tb, web.Config{Backend: sqliteDSN(tb), Upstreams: []web.UpstreamConfig{cfg}, AdminToken: token})
	return &entryServer{srv: srv, origin: o, token: token}
}

// cache stores path's current reply through the gateway and returns the
// entry's detail page URL.
func (s *entryServer) cache(tb testing.TB, path string, r reply, header ...string) string {
	tb.Helper()
	s.origin.set(strings.SplitN(path, "?", 2)[0], r)
	wantCache(tb, get(tb, s.srv.URL()+"/fetch/live"+path, header...), "MISS")
	var auth []string
	if s.token != "" {
		auth = []string{"Authorization", "Bearer " + s.token}
	}
	a := get(tb, s.srv.URL()+"/api/entries?url="+url.QueryEscape(strings.SplitN(path, "?", 2)[0]), auth...)
	var list struct {
		Entries []struct {
			Key string `json:"key"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(a.body), &list); err != nil || len(list.Entries) != 1 {
		tb.Fatalf("entries for %s: %v %s", path, err, a.body)
	}
	return s.srv.URL() + "/entries/" + list.Entries[0].Key
}

// testPNG is a small gradient, for the image viewer.
func testPNG(tb testing.TB) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 160, 90))
	for y := range 90 {
		for x := range 160 {
			img.Set(x, y, color.RGBA{uint8(x * 255 / 160), uint8(y * 255 / 90), 200, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

const sampleJSON = `{"id":42,"name":"cachegate","tags":["cache","http"],"owner":{"login":"ops","admin":true},"license":null,"stars":1234.5}`

func TestBrowserEntryDetail(t *testing.T) {
	s := startEntryServer(t)
	bin := make([]byte, 3000)
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	pages := []struct {
		name, path, wait string
		reply            reply
		header           []string
	}{
		{"json", "/repos/cachegate.json?api_key=SECRET-KEY-1&page=2", "body-json",
			reply{contentType: "application/json", body: []byte(sampleJSON)}, []string{"Accept-Language", "de-CH"}},
		{"image", "/logo.png", "body-image", reply{contentType: "image/png", body: testPNG(t)}, nil},
		{"binary", "/archive.bin", "body-hex", reply{contentType: "application/octet-stream", body: bin}, nil},
	}
	b := newBrowser(t)
	for _, pg := range pages {
		detail := s.cache(t, pg.path, pg.reply, pg.header...)
		for _, v := range viewports {
			t.Run(pg.name+"-"+v.name, func(t *testing.T) {
				run(t, b, emulate(v), chromedp.Navigate(detail), chromedp.WaitVisible(byTestID(pg.wait), chromedp.ByQuery))
				if got := testText(t, b, "entry-upstream"); got != "live" {
					t.Errorf("upstream %q", got)
				}
				var html string
				run(t, b, chromedp.OuterHTML("html", &html, chromedp.ByQuery))
				if strings.Contains(html, "SECRET-KEY-1") {
					t.Fatal("the ignored parameter's value is on the page")
				}
				switch pg.name {
				case "json":
					if got := testText(t, b, "entry-url"); !strings.Contains(got, "api_key=REDACTED") {
						t.Errorf("URL %q is not redacted", got)
					}
					if n := testCount(t, b, byTestID("body-json")+" .j-k"); n != 8 {
						t.Errorf("%d coloured keys, want 8", n)
					}
					// The key colour differs from the text colour: it is coloured.
					var keyColour, textColour string
					run(t, b, chromedp.Evaluate(`getComputedStyle(document.querySelector('.j-k')).color`, &keyColour),
						chromedp.Evaluate(`getComputedStyle(document.querySelector('[data-testid="body-json"]')).color`, &textColour))
					if keyColour == textColour {
						t.Errorf("keys are not coloured (%s)", keyColour)
					}
				case "image":
					// The <img> loads from the sandboxed route under the page's CSP.
					var width int
					run(t, b, chromedp.Poll(`document.querySelector('[data-testid="body-image"]').complete`, nil),
						chromedp.Evaluate(`document.querySelector('[data-testid="body-image"]').naturalWidth`, &width))
					if width != 160 {
						t.Errorf("the image is %d px wide, want 160: it did not load", width)
					}
				case "binary":
					if got := testText(t, b, "body-hex"); !strings.HasPrefix(got, "00000000 00 07 0e 15") {
						t.Errorf("hex dump starts %.40q", got)
					}
				}
				noHorizontalScroll(t, b, pg.name+" at "+v.name)
				browserErrors(t, b, pg.name+" at "+v.name)
				screenshot(t, b, "entry-"+pg.name+"-"+v.name)
				run(t, b, darkMode(true))
				screenshot(t, b, "entry-"+pg.name+"-"+v.name+"-dark")
				run(t, b, darkMode(false))
			})
		}
	}

	t.Run("countdown", func(t *testing.T) {
		// entry.js ticks the expiry: moved to 90 s from now, it reads
		// "in 1 min" within a tick.
		detail := s.cache(t, "/tick", reply{contentType: "text/plain", body: []byte("tock")})
		run(t, b, emulate(desktop), chromedp.Navigate(detail), chromedp.WaitVisible(byTestID("entry-expires"), chromedp.ByQuery),
			chromedp.Evaluate(`document.querySelector('[data-testid="entry-expires"]').setAttribute("datetime", new Date(Date.now()+90500).toISOString())`, nil),
			chromedp.Poll(`document.querySelector('[data-testid="entry-expires"]').textContent === "in 1 min"`, nil, chromedp.WithPollingTimeout(5*time.Second)),
		)
		browserErrors(t, b, "countdown")
	})

	t.Run("copy as curl", func(t *testing.T) {
		detail := s.cache(t, "/copy.json?api_key=SECRET-KEY-2", reply{contentType: "application/json", body: []byte(`{}`)}, "Accept-Language", "fr")
		run(t, b, emulate(desktop), chromedp.Navigate(detail), chromedp.WaitVisible(byTestID("copy-curl"), chromedp.ByQuery),
			cdpbrowser.GrantPermissions([]cdpbrowser.PermissionType{cdpbrowser.PermissionTypeClipboardReadWrite, cdpbrowser.PermissionTypeClipboardSanitizedWrite}).
				WithOrigin(s.srv.URL()),
			chromedp.Click(byTestID("copy-curl"), chromedp.ByQuery),
			chromedp.WaitVisible(byTestID("copy-curl")+"[data-copied]", chromedp.ByQuery),
		)
		var copied string
		run(t, b, chromedp.Evaluate(`navigator.clipboard.readText()`, &copied, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
			return p.WithAwaitPromise(true)
		}))
		want := "curl '" + s.srv.URL() + "/fetch/live/copy.json?api_key=REDACTED' \\\n  -H 'Accept-Language: fr'"
		if copied != want {
			t.Errorf("copied %q, want %q", copied, want)
		}
		browserErrors(t, b, "copy as curl")
	})
}

func TestBrowserEntryRevalidate(t *testing.T) {
	s := startEntryServer(t)
	b := newBrowser(t)
	t.Run("not modified", func(t *testing.T) {
		detail := s.cache(t, "/stable.txt", reply{contentType: "text/plain", etag: `"v1"`, body: []byte("the same")})
		run(t, b, emulate(desktop), chromedp.Navigate(detail), chromedp.WaitVisible(byTestID("revalidate"), chromedp.ByQuery),
			chromedp.Click(byTestID("revalidate"), chromedp.ByQuery),
			chromedp.WaitVisible(byTestID("revalidation"), chromedp.ByQuery))
		var outcome string
		run(t, b, chromedp.AttributeValue(byTestID("revalidation"), "data-outcome", &outcome, nil, chromedp.ByQuery))
		if outcome != "not_modified" {
			t.Fatalf("outcome %q, want not_modified: %s", outcome, testText(t, b, "revalidation"))
		}
		if got := location(t, b); got != detail {
			t.Errorf("htmx did not swap in place: at %s", got)
		}
		browserErrors(t, b, "not modified")
		screenshot(t, b, "entry-not-modified-desktop")
	})

	detail := s.cache(t, "/changing.json", reply{contentType: "application/json", body: []byte(sampleJSON)})
	for i, v := range viewports {
		t.Run("updated-"+v.name, func(t *testing.T) {
			// Each round the upstream answers anew.
			fresh := strings.Replace(sampleJSON, `"stars":1234.5`, `"stars":`+[]string{"1300", "1400"}[i]+`,"forks":7`, 1)
			s.origin.set("/changing.json", reply{contentType: "application/json", body: []byte(fresh)})
			run(t, b, emulate(v), chromedp.Navigate(detail), chromedp.WaitVisible(byTestID("revalidate"), chromedp.ByQuery),
				chromedp.Click(byTestID("revalidate"), chromedp.ByQuery),
				chromedp.WaitVisible(byTestID("diff-body"), chromedp.ByQuery))
			if got := testText(t, b, "revalidation-title"); !strings.HasPrefix(got, "Updated (200)") {
				t.Errorf("title %q", got)
			}
			var removed, added []string
			run(t, b,
				chromedp.Evaluate(`[...document.querySelectorAll('[data-testid="diff-left-del"]')].map(e => e.textContent.trim())`, &removed),
				chromedp.Evaluate(`[...document.querySelectorAll('[data-testid="diff-right-add"]')].map(e => e.textContent.trim())`, &added))
			if len(removed) != 1 || !strings.HasPrefix(removed[0], `"stars":`) {
				t.Errorf("removed %q", removed)
			}
			// The first round adds "forks"; the second changes the stars only.
			if wantAdded := 2 - i; len(added) != wantAdded || !strings.Contains(strings.Join(added, " "), `"stars": `+[]string{"1300", "1400"}[i]) {
				t.Errorf("added %q, want %d lines with the new stars", added, wantAdded)
			}
			// The page under the outcome shows the fresh body.
			if got := testText(t, b, "body-json"); !strings.Contains(got, `"forks": 7`) {
				t.Errorf("body after the update: %.200q", got)
			}
			noHorizontalScroll(t, b, "diff at "+v.name)
			browserErrors(t, b, "updated at "+v.name)
			screenshot(t, b, "entry-diff-"+v.name)
			run(t, b, darkMode(true))
			screenshot(t, b, "entry-diff-"+v.name+"-dark")
			run(t, b, darkMode(false))
		})
	}

	t.Run("without scripts", func(t *testing.T) {
		// The form posts and the answer is the page with the outcome.
		nojs := newBrowser(t)
		s.origin.set("/changing.json", reply{contentType: "application/json", body: []byte(`{"v":"nojs"}`)})
		run(t, nojs, emulation.SetScriptExecutionDisabled(true), emulate(desktop), chromedp.Navigate(detail),
			chromedp.WaitVisible(byTestID("revalidate"), chromedp.ByQuery),
			chromedp.Click(byTestID("revalidate"), chromedp.ByQuery),
			chromedp.WaitVisible(byTestID("diff"), chromedp.ByQuery))
		if got := location(t, nojs); got != detail+"/revalidate" {
			t.Errorf("at %s, want the form's answer", got)
		}
		if got := testText(t, nojs, "body-json"); !strings.Contains(got, `"v": "nojs"`) {
			t.Errorf("body %q", got)
		}
		screenshot(t, nojs, "entry-diff-noscript-desktop")
		browserErrors(t, nojs, "without scripts")
	})
}

func TestBrowserEntryDelete(t *testing.T) {
	s := startEntryServer(t)
	b := newBrowser(t)
	for _, v := range viewports {
		t.Run(v.name, func(t *testing.T) {
			detail := s.cache(t, "/doomed-"+v.name, reply{contentType: "text/plain", body: []byte("bye")})
			key := detail[strings.LastIndex(detail, "/")+1:]
			run(t, b, emulate(v), chromedp.Navigate(detail), chromedp.WaitVisible(byTestID("delete-open"), chromedp.ByQuery),
				chromedp.Click(byTestID("delete-open"), chromedp.ByQuery),
				chromedp.WaitVisible(byTestID("delete-confirm"), chromedp.ByQuery))
			noHorizontalScroll(t, b, "delete confirmation at "+v.name)
			screenshot(t, b, "entry-delete-confirm-"+v.name)
			run(t, b, chromedp.Click(byTestID("delete-confirm"), chromedp.ByQuery),
				chromedp.WaitNotPresent(byTestID("entry-detail"), chromedp.ByQuery),
				chromedp.WaitVisible(byTestID("main"), chromedp.ByQuery))
			landed, err := url.Parse(location(t, b))
			if err != nil {
				t.Fatal(err)
			}
			if landed.Path != "/entries" || landed.Query().Get("deleted") != "1" {
				t.Errorf("landed on %s, want the entries list with deleted=1", landed)
			}
			if got := testText(t, b, "notice"); !strings.HasPrefix(got, "Deleted 1 entry (") {
				t.Errorf("notice %q, want it to say one entry was deleted", got)
			}
			if a := get(t, s.srv.URL()+"/api/entries/"+key); a.status != http.StatusNotFound {
				t.Errorf("after deleting: GET /api/entries/%s answers %d, want 404", key, a.status)
			}
			browserErrors(t, b, "the entries list after a delete at "+v.name)
			// The deleted entry's page is a readable 404 with the way back.
			run(t, b, chromedp.Navigate(detail), chromedp.WaitVisible(byTestID("back-to-entries"), chromedp.ByQuery))
			if got := testText(t, b, "error-status"); got != "404" {
				t.Errorf("status %q", got)
			}
			screenshot(t, b, "entry-missing-"+v.name)
			b.mu.Lock()
			b.errors = nil
			b.mu.Unlock()
		})
	}
}

func TestBrowserEntrySignedIn(t *testing.T) {
	// With a token the page's own routes take the session cookie: the
	// image shows and the download answers, no bearer header needed.
	s := startEntryServerWithToken(t, "entry-token")
	detail := s.cache(t, "/signed.png", reply{contentType: "image/png", body: testPNG(t)})
	b := newBrowser(t)
	run(t, b, emulate(desktop), chromedp.Navigate(detail), chromedp.WaitVisible(byTestID("signin-token"), chromedp.ByQuery),
		chromedp.SendKeys(byTestID("signin-token"), "entry-token", chromedp.ByQuery),
		chromedp.Click(byTestID("signin-submit"), chromedp.ByQuery),
		chromedp.WaitVisible(byTestID("body-image"), chromedp.ByQuery),
		chromedp.Poll(`document.querySelector('[data-testid="body-image"]').complete`, nil))
	if got := location(t, b); got != detail {
		t.Fatalf("after signing in: %s, want the entry %s", got, detail)
	}
	var width int
	var download string
	run(t, b,
		chromedp.Evaluate(`document.querySelector('[data-testid="body-image"]').naturalWidth`, &width),
		chromedp.Evaluate(`fetch(document.querySelector('[data-testid="download"]').href).then(r => r.status + " " + r.headers.get("Content-Disposition"))`, &download,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if width != 160 {
		t.Errorf("the image is %d px wide, want 160", width)
	}
	if download != "200 attachment; filename=signed.png" {
		t.Errorf("download answers %q", download)
	}
	// Without the session, the body routes are refused like the page.
	if a := get(t, detail+"/body"); a.status != http.StatusSeeOther && a.status != http.StatusOK {
		t.Errorf("body route without a session: %d", a.status)
	} else if strings.Contains(a.body, "PNG") {
		t.Error("the body route answers without a session")
	}
	browserErrors(t, b, "signed in")
}
