package e2e_test

// Browser tests drive Debian's headless Chromium against the real server.
// To add one: start a server (startUIServer, or startServer with your own
// web.Config), open a browser with newBrowser, and for each width in
// viewports navigate, read the DOM by data-testid (testText, testCount),
// check browserErrors, and save a screenshot with screenshot. Look at the
// PNGs in e2e/screenshots/ before you call a page done.

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a-h/templ"
	"github.com/cachegate/cachegate/static"
	"github.com/cachegate/cachegate/views"
	"github.com/cachegate/cachegate/web"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPaths are where Chromium is looked for, Debian's package first.
var chromiumPaths = []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"}

// findChromium returns the Chromium to drive. Without one the test fails
// in CI (CI=true), where .ci/run installs it, and is skipped elsewhere.
func findChromium(tb testing.TB) string {
	tb.Helper()
	for _, p := range chromiumPaths {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("no Chromium found (looked for %s); .ci/run installs Debian's chromium package", strings.Join(chromiumPaths, ", "))
	}
	tb.Skipf("no Chromium found (looked for %s); install Debian's chromium package to run the browser tests", strings.Join(chromiumPaths, ", "))
	return ""
}

// browser is a headless Chromium tab and what it reported.
type browser struct {
	ctx context.Context

	mu     sync.Mutex
	errors []string // uncaught exceptions, console errors, CSP violations
}

// newBrowser starts a fresh headless Chromium (its own profile in a temp
// dir, nothing phoning home) and returns a tab's context, bounded so a
// stuck page fails the test instead of hanging it. It stops at the end of
// the test.
func newBrowser(tb testing.TB) *browser {
	tb.Helper()
	path := findChromium(tb)
	// Not tb.TempDir: Chromium may still be writing its profile as the
	// test's own cleanup runs, which would fail the test.
	profile, err := os.MkdirTemp("", "cachegate-chromium-")
	if err != nil {
		tb.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.WindowSize(int(desktop.width), int(desktop.height)),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	// Generous: two cores shared with other builds make Chromium slow to
	// start; a page that never loads still fails within it.
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	tb.Cleanup(func() {
		// Cancel closes the browser and waits for it to exit.
		_ = chromedp.Cancel(ctx)
		cancelTimeout()
		cancelTab()
		cancelAlloc()
		_ = os.RemoveAll(profile)
	})
	b := &browser{ctx: ctx}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.report("exception: " + ev.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value))
				}
				b.report("console.error: " + strings.Join(parts, " "))
			}
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.LevelError && !strings.Contains(ev.Entry.Text, "favicon") {
				b.report(string(ev.Entry.Source) + ": " + ev.Entry.Text)
			}
		}
	})
	if err := chromedp.Run(ctx, log.Enable(), runtime.Enable()); err != nil {
		tb.Fatalf("start Chromium %s: %v", path, err)
	}
	return b
}

func (b *browser) report(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errors = append(b.errors, s)
}

// browserErrors fails the test when the page threw, logged an error or
// had something refused by its Content-Security-Policy since the last
// call.
func browserErrors(tb testing.TB, b *browser, where string) {
	tb.Helper()
	b.mu.Lock()
	errs := b.errors
	b.errors = nil
	b.mu.Unlock()
	if len(errs) > 0 {
		tb.Errorf("%s: the browser reported:\n  %s", where, strings.Join(errs, "\n  "))
	}
}

// run runs chromedp actions in b's tab and fails the test on error.
func run(tb testing.TB, b *browser, actions ...chromedp.Action) {
	tb.Helper()
	if err := chromedp.Run(b.ctx, actions...); err != nil {
		tb.Fatal(err)
	}
}

// viewport is a screen size the pages must work at.
type viewport struct {
	name          string
	width, height int64
	mobile        bool
}

var (
	desktop   = viewport{"desktop", 1280, 800, false}
	phone     = viewport{"phone", 390, 844, true}
	viewports = []viewport{desktop, phone}
)

// emulate sets b's viewport to v.
func emulate(v viewport) chromedp.Action {
	if v.mobile {
		return chromedp.EmulateViewport(v.width, v.height, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	return chromedp.EmulateViewport(v.width, v.height)
}

// darkMode switches the tab's prefers-color-scheme.
func darkMode(on bool) chromedp.Action {
	value := "light"
	if on {
		value = "dark"
	}
	return emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: value}})
}

// screenshotDir is where screenshots go; .gitignore keeps them out of git.
const screenshotDir = "screenshots"

// screenshot saves the whole page as screenshots/<name>.png.
func screenshot(tb testing.TB, b *browser, name string) {
	tb.Helper()
	var png []byte
	run(tb, b, chromedp.FullScreenshot(&png, 100))
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// byTestID is the CSS selector of data-testid=id.
func byTestID(id string) string { return `[data-testid="` + id + `"]` }

// testText returns the text of the first element marked data-testid=id,
// with white space collapsed, waiting for it to be there.
func testText(tb testing.TB, b *browser, id string) string {
	tb.Helper()
	var s string
	run(tb, b, chromedp.Text(byTestID(id), &s, chromedp.ByQuery))
	return strings.Join(strings.Fields(s), " ")
}

// testCount returns how many elements match the CSS selector sel now.
func testCount(tb testing.TB, b *browser, sel string) int {
	tb.Helper()
	var nodes []*cdp.Node
	run(tb, b, chromedp.Nodes(sel, &nodes, chromedp.ByQueryAll, chromedp.AtLeast(0)))
	return len(nodes)
}

// noHorizontalScroll fails when the page is wider than the viewport: a
// table or a long URL that breaks the layout. Tables may scroll inside
// their own box; the page may not.
func noHorizontalScroll(tb testing.TB, b *browser, where string) {
	tb.Helper()
	var overflow int
	run(tb, b, chromedp.Evaluate(`document.documentElement.scrollWidth - document.documentElement.clientWidth`, &overflow))
	if overflow > 0 {
		tb.Errorf("%s: the page is %d px wider than the viewport", where, overflow)
	}
}

// location returns the tab's current URL.
func location(tb testing.TB, b *browser) string {
	tb.Helper()
	var u string
	run(tb, b, chromedp.Location(&u))
	return u
}

// pageCSP is the Content-Security-Policy the admin pages are served with
// (the guard's protectPages sets it); serveComponent applies it so a page
// that needs an inline script fails here.
const pageCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"

// serveComponent serves c at / with the assets under /static/ and the
// pages' CSP, for screenshots of a state the running server cannot reach
// yet (the sign-in form before the guard is merged, a failed backend).
func serveComponent(tb testing.TB, c templ.Component) string {
	tb.Helper()
	mux := http.NewServeMux()
	mux.Handle(static.Prefix, http.StripPrefix(strings.TrimSuffix(static.Prefix, "/"), static.Handler()))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		if err := c.Render(r.Context(), &buf); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", pageCSP)
		_, _ = w.Write(buf.Bytes())
	})
	s := httptest.NewServer(mux)
	tb.Cleanup(s.Close)
	return s.URL
}

// startUIServer runs cachegate the way an operator would for the UI
// tests: a SQLite file as the default backend, a memory backend named
// "scratch", and a real httpbin upstream "bin" on the default backend with
// a few entries cached (two misses, one hit).
func startUIServer(tb testing.TB, token string) *web.Server {
	tb.Helper()
	bin := startHTTPBin(tb)
	srv := startServer(tb, web.Config{
		Backend:    sqliteDSN(tb),
		Backends:   map[string]string{"scratch": "memory://?max_size=16MiB"},
		Upstreams:  []web.UpstreamConfig{upstream("bin", bin)},
		AdminToken: token,
	})
	wantCache(tb, get(tb, srv.URL()+"/fetch/bin/get?page=1"), "MISS")
	wantCache(tb, get(tb, srv.URL()+"/fetch/bin/get?page=1"), "HIT")
	wantCache(tb, get(tb, srv.URL()+"/fetch/bin/json"), "MISS")
	return srv
}

func TestBrowserOverview(t *testing.T) {
	srv := startUIServer(t, "")
	b := newBrowser(t)
	for _, v := range viewports {
		t.Run(v.name, func(t *testing.T) {
			run(t, b, emulate(v), chromedp.Navigate(srv.URL()+"/"), chromedp.WaitVisible(byTestID("upstream-row"), chromedp.ByQuery))
			if got, want := testText(t, b, "page-title"), "Overview"; got != want {
				t.Errorf("title %q, want %q", got, want)
			}
			if got, want := testText(t, b, "upstream-requests"), "3"; got != want {
				t.Errorf("bin requests %q, want %q", got, want)
			}
			if got, want := testText(t, b, "upstream-hits"), "1"; got != want {
				t.Errorf("bin hits %q, want %q", got, want)
			}
			if got, want := testText(t, b, "upstream-hit-ratio"), "33.3 %"; got != want {
				t.Errorf("bin hit ratio %q, want %q", got, want)
			}
			if got, want := testCount(t, b, byTestID("backend-summary-row")), 2; got != want {
				t.Errorf("%d backend rows, want %d", got, want)
			}
			if got, want := testText(t, b, "auth"), "local access"; got != want {
				t.Errorf("auth state %q, want %q", got, want)
			}
			noHorizontalScroll(t, b, "/ at "+v.name)
			browserErrors(t, b, "/ at "+v.name)
			screenshot(t, b, "overview-"+v.name)
			run(t, b, darkMode(true))
			screenshot(t, b, "overview-"+v.name+"-dark")
			run(t, b, darkMode(false))
		})
	}
}

func TestBrowserBackends(t *testing.T) {
	srv := startUIServer(t, "")
	b := newBrowser(t)
	for _, v := range viewports {
		t.Run(v.name, func(t *testing.T) {
			run(t, b, emulate(v), chromedp.Navigate(srv.URL()+"/backends"), chromedp.WaitVisible(byTestID("backend-row"), chromedp.ByQuery))
			if got, want := testCount(t, b, byTestID("backend-row")), 2; got != want {
				t.Fatalf("%d backend rows, want %d", got, want)
			}
			if got, want := testCount(t, b, byTestID("backend-healthy")), 2; got != want {
				t.Errorf("%d healthy backends, want %d", got, want)
			}
			var kinds []string
			run(t, b, chromedp.Evaluate(`[...document.querySelectorAll('[data-testid="backend-kind"]')].map(e => e.textContent.trim())`, &kinds))
			if got, want := strings.Join(kinds, ","), "sqlite,memory"; got != want {
				t.Errorf("kinds %s, want %s", got, want)
			}
			if got := testText(t, b, "backend-entries"); got != "2" {
				t.Errorf("default backend entries %q, want 2", got)
			}
			noHorizontalScroll(t, b, "/backends at "+v.name)
			browserErrors(t, b, "/backends at "+v.name)
			screenshot(t, b, "backends-"+v.name)
		})
	}
}

func TestBrowserBackendDown(t *testing.T) {
	// A backend that fails its health check, drawn from the view the
	// Backends page renders, to see the state no running server shows on
	// demand.
	l := views.Layout{Title: "Backends", Active: "/backends", Path: "/backends", Backend: "default", DefaultBackend: "default",
		Auth: views.Auth{TokenRequired: true, SignedIn: true}, CSRFToken: "csrf",
		Backends: []views.BackendChoice{{Name: "default", Kind: "sqlite", Entries: 1234567, Bytes: 9 << 30}, {Name: "shared", Kind: "mongodb", Err: "down"}}}
	rows := []views.BackendRow{
		{Name: "default", Kind: "sqlite", DSN: "sqlite:///var/lib/cachegate/cache.db?max_size=10GiB", Entries: 1234567, Bytes: 9 << 30, MaxBytes: 10 << 30, Healthy: true},
		{Name: "shared", Kind: "mongodb", DSN: "mongodb://cachegate:REDACTED@mongo-1.internal,mongo-2.internal/cachegate?replicaSet=rs0", Err: "mongodb: ping: server selection error: context deadline exceeded, current topology: { Type: ReplicaSetNoPrimary }"},
	}
	u := serveComponent(t, views.Backends(l, rows))
	b := newBrowser(t)
	for _, v := range viewports {
		t.Run(v.name, func(t *testing.T) {
			run(t, b, emulate(v), chromedp.Navigate(u+"/"), chromedp.WaitVisible(byTestID("backend-unhealthy"), chromedp.ByQuery))
			if got := testText(t, b, "backend-error"); !strings.Contains(got, "server selection error") {
				t.Errorf("error shown %q", got)
			}
			noHorizontalScroll(t, b, "backend down at "+v.name)
			browserErrors(t, b, "backend down at "+v.name)
			screenshot(t, b, "backends-down-"+v.name)
			run(t, b, darkMode(true))
			screenshot(t, b, "backends-down-"+v.name+"-dark")
			run(t, b, darkMode(false))
		})
	}
}

func TestBrowserBackendPickerKeepsThePage(t *testing.T) {
	srv := startUIServer(t, "")
	b := newBrowser(t)
	run(t, b, emulate(desktop), chromedp.Navigate(srv.URL()+"/backends"), chromedp.WaitVisible(byTestID("backend-select"), chromedp.ByQuery))
	// app.js submits the picker on change; choosing loads the same page
	// with ?backend=.
	run(t, b,
		chromedp.Evaluate(`(() => {
			const s = document.querySelector('[data-testid="backend-select"]');
			s.value = "scratch";
			s.dispatchEvent(new Event("change", {bubbles: true}));
		})()`, nil),
		chromedp.WaitReady(byTestID("backend-option-scratch")+"[selected]", chromedp.ByQuery),
	)
	if got, want := location(t, b), srv.URL()+"/backends?backend=scratch"; got != want {
		t.Fatalf("after picking scratch: %s, want %s", got, want)
	}
	var href string
	run(t, b, chromedp.AttributeValue(byTestID("nav-overview"), "href", &href, nil, chromedp.ByQuery))
	if href != "/?backend=scratch" {
		t.Errorf("the overview link %q does not keep the backend", href)
	}
	// With the script doing the submit, the Go button is hidden.
	var goVisible bool
	run(t, b, chromedp.Evaluate(`getComputedStyle(document.querySelector('.picker .nojs')).display !== "none"`, &goVisible))
	if goVisible {
		t.Error("the picker's Go button shows although the script submits on change")
	}
	browserErrors(t, b, "backend picker")
}

func TestBrowserErrorPage(t *testing.T) {
	srv := startUIServer(t, "")
	b := newBrowser(t)
	for _, v := range viewports {
		t.Run(v.name, func(t *testing.T) {
			run(t, b, emulate(v), chromedp.Navigate(srv.URL()+"/no/such/page"), chromedp.WaitVisible(byTestID("error"), chromedp.ByQuery))
			if got, want := testText(t, b, "error-status"), "404"; got != want {
				t.Errorf("status %q, want %q", got, want)
			}
			if got := testText(t, b, "error-title"); !strings.Contains(got, "/no/such/page") {
				t.Errorf("title %q does not name the path", got)
			}
			noHorizontalScroll(t, b, "404 at "+v.name)
			screenshot(t, b, "error-404-"+v.name)
			// The browser logs the 404 itself as a failed load: not a page error.
			b.mu.Lock()
			b.errors = nil
			b.mu.Unlock()
		})
	}
}

func TestBrowserSignInForm(t *testing.T) {
	// The form in the states POST /signin's redirects show, under the
	// pages' CSP.
	b := newBrowser(t)
	for _, tc := range []struct {
		name      string
		errorText string
		signedOut bool
	}{
		{"signin", "", false},
		{"signin-invalid", "That token is not the admin token.", false},
		{"signin-signed-out", "", true},
	} {
		u := serveComponent(t, signInView(tc.errorText, tc.signedOut))
		for _, v := range viewports {
			t.Run(tc.name+"-"+v.name, func(t *testing.T) {
				run(t, b, emulate(v), chromedp.Navigate(u+"/"), chromedp.WaitVisible(byTestID("signin-token"), chromedp.ByQuery))
				if tc.errorText != "" {
					if got := testText(t, b, "signin-error"); got != tc.errorText {
						t.Errorf("error %q, want %q", got, tc.errorText)
					}
				}
				if got := testCount(t, b, byTestID("signed-out")) == 1; got != tc.signedOut {
					t.Errorf("signed-out notice shown %v, want %v", got, tc.signedOut)
				}
				var focused string
				run(t, b, chromedp.Evaluate(`document.activeElement && document.activeElement.dataset.testid || ""`, &focused))
				if focused != "signin-token" {
					t.Errorf("focus on %q, want the token field", focused)
				}
				noHorizontalScroll(t, b, tc.name+" at "+v.name)
				browserErrors(t, b, tc.name+" at "+v.name)
				screenshot(t, b, tc.name+"-"+v.name)
			})
		}
	}
}

func TestBrowserSignInWithToken(t *testing.T) {
	srv := startUIServer(t, "s3cret-token")
	b := newBrowser(t)
	// The overview at desktop width, another page (which next= must bring
	// the user back to) at phone width.
	for _, tc := range []struct {
		v          viewport
		path, wait string
	}{
		{desktop, "/", "upstream-row"},
		{phone, "/backends", "backend-row"},
	} {
		t.Run(tc.v.name, func(t *testing.T) {
			run(t, b, emulate(tc.v), chromedp.Navigate(srv.URL()+tc.path), chromedp.WaitVisible(byTestID("signin-form"), chromedp.ByQuery))
			landed, err := url.Parse(location(t, b))
			if err != nil {
				t.Fatal(err)
			}
			if landed.Path != "/signin" || landed.Query().Get("next") != tc.path {
				t.Fatalf("an unauthenticated visit to %s landed on %s, want /signin?next=%s", tc.path, landed, tc.path)
			}
			screenshot(t, b, "signin-redirect-"+tc.v.name)
			// A wrong token says so and stays on the form.
			run(t, b,
				chromedp.SendKeys(byTestID("signin-token"), "wrong", chromedp.ByQuery),
				chromedp.Click(byTestID("signin-submit"), chromedp.ByQuery),
				chromedp.WaitVisible(byTestID("signin-error"), chromedp.ByQuery),
			)
			if got, want := testText(t, b, "signin-error"), "That token is not the admin token."; got != want {
				t.Errorf("error %q, want %q", got, want)
			}
			// The right one lands on the page asked for, signed in.
			run(t, b,
				chromedp.SendKeys(byTestID("signin-token"), "s3cret-token", chromedp.ByQuery),
				chromedp.Click(byTestID("signin-submit"), chromedp.ByQuery),
				chromedp.WaitVisible(byTestID(tc.wait), chromedp.ByQuery),
			)
			if got, want := location(t, b), srv.URL()+tc.path; got != want {
				t.Errorf("after signing in: %s, want %s", got, want)
			}
			if got := testCount(t, b, byTestID("auth-signed-in")); got != 1 {
				t.Error("the header does not show the signed-in state")
			}
			screenshot(t, b, "signed-in-"+tc.v.name)
			// Signing out returns to the form.
			run(t, b, chromedp.Click(byTestID("signout"), chromedp.ByQuery), chromedp.WaitVisible(byTestID("signed-out"), chromedp.ByQuery))
			browserErrors(t, b, "sign-in at "+tc.v.name)
		})
	}
}

// signInView is the sign-in page in one of its states.
func signInView(errorText string, signedOut bool) templ.Component {
	return views.SignIn(views.SignInView{CSRFToken: "csrf", Next: "/backends", Error: errorText, SignedOut: signedOut})
}

func TestBrowserToast(t *testing.T) {
	// Pages and server answers (HX-Trigger) raise toasts through app.js;
	// the message is text, never markup.
	srv := startUIServer(t, "")
	b := newBrowser(t)
	for _, v := range viewports {
		t.Run(v.name, func(t *testing.T) {
			run(t, b, emulate(v), chromedp.Navigate(srv.URL()+"/"), chromedp.WaitVisible(byTestID("upstream-row"), chromedp.ByQuery),
				chromedp.Evaluate(`document.body.dispatchEvent(new CustomEvent("cachegate:toast", {bubbles: true, detail: {message: "Deleted <b>3</b> entries", kind: "ok"}}))`, nil),
				chromedp.WaitVisible(byTestID("toast"), chromedp.ByQuery),
			)
			if got, want := testText(t, b, "toast"), "Deleted <b>3</b> entries ×"; got != want {
				t.Errorf("toast %q, want %q", got, want)
			}
			if n := testCount(t, b, byTestID("toast")+" b"); n != 0 {
				t.Error("the toast rendered its message as HTML")
			}
			noHorizontalScroll(t, b, "toast at "+v.name)
			screenshot(t, b, "toast-"+v.name)
			run(t, b, chromedp.Click(byTestID("toast")+" .toast-close", chromedp.ByQuery), chromedp.WaitNotPresent(byTestID("toast"), chromedp.ByQuery))
			browserErrors(t, b, "toast at "+v.name)
		})
	}
}

func TestBrowserWorksWithoutScripts(t *testing.T) {
	// With scripts off the picker shows its Go button, and the plain GET
	// form picks the backend and keeps the page.
	srv := startUIServer(t, "")
	b := newBrowser(t)
	run(t, b, emulation.SetScriptExecutionDisabled(true), emulate(desktop),
		chromedp.Navigate(srv.URL()+"/backends"), chromedp.WaitVisible(byTestID("backend-picker")+" .nojs", chromedp.ByQuery))
	run(t, b,
		chromedp.SetValue(byTestID("backend-select"), "scratch", chromedp.ByQuery),
		chromedp.Click(byTestID("backend-picker")+" .nojs", chromedp.ByQuery),
		chromedp.WaitReady(byTestID("backend-option-scratch")+"[selected]", chromedp.ByQuery),
	)
	if got, want := location(t, b), srv.URL()+"/backends?backend=scratch"; got != want {
		t.Fatalf("after picking scratch without scripts: %s, want %s", got, want)
	}
	screenshot(t, b, "backends-noscript-desktop")
	browserErrors(t, b, "without scripts")
}
