package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachegate/cachegate/web"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
)

// heldUpstream is a real upstream whose answers the test lets out one at
// a time while hold is on, so a bulk revalidation over it is visibly
// running for as long as the test wants. It answers 304 to a request
// carrying its ETag.
type heldUpstream struct {
	url    string
	hold   atomic.Bool
	fail   atomic.Bool   // answer 502 to paths under /x-fail/
	tokens chan struct{} // one per answer while holding
	free   chan struct{} // closed by open: no more holding
}

func startHeldUpstream(tb testing.TB) *heldUpstream {
	tb.Helper()
	u := &heldUpstream{tokens: make(chan struct{}), free: make(chan struct{})}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u.hold.Load() {
			select {
			case <-u.tokens:
			case <-u.free:
			case <-r.Context().Done(): // the job was cancelled
				return
			}
		}
		if u.fail.Load() && strings.HasPrefix(r.URL.Path, "/x-fail/") {
			http.Error(w, "upstream trouble", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}))
	tb.Cleanup(s.Close)
	u.url = s.URL
	return u
}

// release lets n held requests through, waiting for each to arrive.
func (u *heldUpstream) release(tb testing.TB, n int) {
	tb.Helper()
	for i := 0; i < n; i++ {
		select {
		case u.tokens <- struct{}{}:
		case <-time.After(30 * time.Second):
			tb.Fatalf("released %d of %d held requests: no more came", i, n)
		}
	}
}

// open lets every request through from now on, the held ones too.
func (u *heldUpstream) open() { close(u.free) }

// startJob starts a bulk revalidation of backend through the JSON API,
// one request at a time, and returns its id.
func startJob(tb testing.TB, srv *web.Server, backend string) string {
	tb.Helper()
	return startJobWith(tb, srv, backend, "")
}

// startJobWith is startJob with the admin token.
func startJobWith(tb testing.TB, srv *web.Server, backend, token string) string {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL()+"/api/revalidate?backend="+backend, strings.NewReader(`{"concurrency": 1}`))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var job struct{ ID string }
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(body, &job) != nil || job.ID == "" {
		tb.Fatalf("POST /api/revalidate?backend=%s: %d %s", backend, resp.StatusCode, body)
	}
	return job.ID
}

// jobCard is the selector of job id's card.
func jobCard(id string) string { return `article[data-testid="job"][data-job-id="` + id + `"]` }

// waitJS polls a JavaScript expression until it is true.
func waitJS(tb testing.TB, b *browser, expr string) {
	tb.Helper()
	run(tb, b, chromedp.Poll(expr, nil, chromedp.WithPollingTimeout(30*time.Second)))
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// fieldIs is a JavaScript test that the element sel holds text.
func fieldIs(sel, text string) string {
	return `(document.querySelector(` + jsString(sel) + `)?.textContent.trim() === ` + jsString(text) + `)`
}

// TestBrowserJobs: two bulk revalidations held by their upstreams; the
// Jobs page's progress bars move as the test lets requests through, one
// job is cancelled from the page, the other ends and its card shows the
// outcome; at laptop and phone width, light and dark.
func TestBrowserJobs(t *testing.T) {
	a, bUp := startHeldUpstream(t), startHeldUpstream(t)
	srv := startServer(t, web.Config{
		Backend:  sqliteDSN(t),
		Backends: map[string]string{"scratch": "memory://?max_size=16MiB"},
		Upstreams: []web.UpstreamConfig{
			upstream("slow", a.url),
			{Name: "slow2", URL: bUp.url, Backend: "scratch", Policy: upstream("", "").Policy},
		},
	})
	// A: 30 entries whose upstream answers 304, then 4 (last in URL
	// order) it will fail.
	const good, bad, nB = 30, 4, 8
	const nA = good + bad
	for i := 0; i < good; i++ {
		wantCache(t, get(t, fmt.Sprintf("%s/fetch/slow/item/%d", srv.URL(), i)), "MISS")
	}
	for i := 0; i < bad; i++ {
		wantCache(t, get(t, fmt.Sprintf("%s/fetch/slow/x-fail/%d", srv.URL(), i)), "MISS")
	}
	for i := 0; i < nB; i++ {
		wantCache(t, get(t, fmt.Sprintf("%s/fetch/slow2/item/%d", srv.URL(), i)), "MISS")
	}
	b := newBrowser(t)
	for _, v := range viewports {
		run(t, b, emulate(v), chromedp.Navigate(srv.URL()+"/jobs"), chromedp.WaitVisible(byTestID("empty-state"), chromedp.ByQuery))
		noHorizontalScroll(t, b, "/jobs empty at "+v.name)
		screenshot(t, b, "jobs-empty-"+v.name)
	}

	a.fail.Store(true)
	a.hold.Store(true)
	bUp.hold.Store(true)
	idA := startJob(t, srv, "default")
	idB := startJob(t, srv, "scratch")

	run(t, b, emulate(desktop), chromedp.Navigate(srv.URL()+"/jobs"), chromedp.WaitVisible(jobCard(idA), chromedp.ByQuery))
	waitJS(t, b, `document.getElementById("live-status").dataset.state === "open"`)
	if got := testCount(t, b, `article[data-testid="job"]`); got != 2 {
		t.Fatalf("%d job cards, want 2", got)
	}
	// Newest first: B was started last.
	var first string
	run(t, b, chromedp.Evaluate(`document.querySelector('article[data-testid="job"]').dataset.jobId`, &first))
	if first != idB {
		t.Errorf("first card %s, want the newest job %s", first, idB)
	}
	waitJS(t, b, fieldIs(jobCard(idA)+` [data-testid="job-total"]`, fmt.Sprint(nA)))
	var before float64
	run(t, b, chromedp.Evaluate(`document.querySelector(`+jsString(jobCard(idA)+" progress")+`).value`, &before))

	// Let five through: the bar and the counts move without a reload.
	a.release(t, 5)
	waitJS(t, b, fieldIs(jobCard(idA)+` [data-testid="job-done"]`, "5"))
	var after float64
	run(t, b, chromedp.Evaluate(`document.querySelector(`+jsString(jobCard(idA)+" progress")+`).value`, &after))
	if before != 0 || after != 5 {
		t.Errorf("progress bar went from %v to %v, want 0 to 5", before, after)
	}
	if got := testText(t, b, "job-state"); got != "running" {
		t.Errorf("state %q while held", got)
	}
	var rate string
	run(t, b, chromedp.Text(jobCard(idA)+` [data-testid="job-rate"]`, &rate, chromedp.ByQuery))
	if !strings.HasSuffix(rate, "/s") {
		t.Errorf("rate %q, want entries per second", rate)
	}
	noHorizontalScroll(t, b, "/jobs running")
	screenshot(t, b, "jobs-running-desktop")
	run(t, b, emulate(phone))
	screenshot(t, b, "jobs-running-phone")
	run(t, b, darkMode(true))
	screenshot(t, b, "jobs-running-phone-dark")
	run(t, b, darkMode(false), emulate(desktop))

	// Cancel B from its card: a plain form POST, back to the list.
	run(t, b, chromedp.Click(jobCard(idB)+` [data-testid="job-cancel"]`, chromedp.ByQuery),
		chromedp.WaitVisible(byTestID("notice"), chromedp.ByQuery))
	if got := testText(t, b, "notice"); !strings.Contains(got, "Cancelling job "+idB) {
		t.Errorf("notice after cancel %q", got)
	}
	waitJS(t, b, `!!document.querySelector(`+jsString(jobCard(idB)+".job-cancelled")+`)`)
	var cut string
	run(t, b, chromedp.Text(jobCard(idB)+` [data-testid="job-failed"]`, &cut, chromedp.ByQuery))
	if cut != "0" {
		t.Errorf("the cancelled job counts %s failures: the request the cancel cut off is not the entry's failure", cut)
	}
	if n := testCount(t, b, jobCard(idB)+` [data-testid="job-cancel"]`); n != 0 {
		t.Error("the cancelled job still offers Cancel")
	}
	// A still runs, and still moves after the page was reloaded by the
	// cancel.
	a.open()
	waitJS(t, b, `!!document.querySelector(`+jsString(jobCard(idA)+".job-done")+`)`)
	var outcome []string
	run(t, b, chromedp.Evaluate(`[...document.querySelectorAll(`+jsString(jobCard(idA)+` [data-testid="job-outcome-count"]`)+`)].map(e => e.textContent.trim().replace(/\s+/g, " "))`, &outcome))
	if got, want := strings.Join(outcome, ", "), fmt.Sprintf("not modified %d, updated 0, gone 0, error %d, skipped 0", good, bad); got != want {
		t.Errorf("outcome %q, want %q", got, want)
	}
	// The failures with the upstream's answer, three on the list.
	if got := testCount(t, b, jobCard(idA)+` [data-testid="job-issue"]`); got != 3 {
		t.Errorf("%d failures listed, want 3", got)
	}
	var reason, more string
	run(t, b, chromedp.Text(jobCard(idA)+` [data-testid="job-issue-reason"]`, &reason, chromedp.ByQuery),
		chromedp.Text(jobCard(idA)+` [data-testid="job-issues-more"]`, &more, chromedp.ByQuery))
	if !strings.Contains(reason, "502") {
		t.Errorf("failure reason %q does not give the upstream's answer", reason)
	}
	if got := strings.Join(strings.Fields(more), " "); got != "and 1 more — see the job" {
		t.Errorf("more %q", got)
	}
	var href string
	run(t, b, chromedp.AttributeValue(jobCard(idA)+` [data-testid="job-result"]`, "href", &href, nil, chromedp.ByQuery))
	if href != "/entries" {
		t.Errorf("result link %q, want /entries", href)
	}
	browserErrors(t, b, "/jobs")
	for _, v := range viewports {
		run(t, b, emulate(v))
		noHorizontalScroll(t, b, "/jobs ended at "+v.name)
		screenshot(t, b, "jobs-ended-"+v.name)
		run(t, b, darkMode(true))
		screenshot(t, b, "jobs-ended-"+v.name+"-dark")
		run(t, b, darkMode(false))
	}

	// The ended job's own page.
	for _, v := range viewports {
		run(t, b, emulate(v), chromedp.Navigate(srv.URL()+"/jobs/"+idA), chromedp.WaitVisible(jobCard(idA), chromedp.ByQuery))
		if got := testText(t, b, "page-title"); got != "Revalidate · default" {
			t.Errorf("job page title %q", got)
		}
		if got := testCount(t, b, `table[data-testid="job-issues"] [data-testid="job-issue"]`); got != bad {
			t.Errorf("the job's page lists %d failures, want all %d", got, bad)
		}
		noHorizontalScroll(t, b, "/jobs/ID at "+v.name)
		screenshot(t, b, "job-detail-"+v.name)
		run(t, b, darkMode(true))
		screenshot(t, b, "job-detail-"+v.name+"-dark")
		run(t, b, darkMode(false))
	}
	browserErrors(t, b, "/jobs/ID")

	// A job started while the list is open shows up at its top, running.
	run(t, b, emulate(desktop), chromedp.Navigate(srv.URL()+"/jobs"), chromedp.WaitVisible(jobCard(idA), chromedp.ByQuery))
	waitJS(t, b, `document.getElementById("live-status").dataset.state === "open"`)
	idC := startJob(t, srv, "scratch")
	waitJS(t, b, `document.querySelector('[data-jobs-list] > article')?.dataset.jobId === `+jsString(idC))
	if got := testCount(t, b, jobCard(idC)+`.job-running [data-testid="job-cancel"]`); got != 1 {
		t.Error("the job that appeared is not shown running with its Cancel button")
	}
	browserErrors(t, b, "/jobs with a new job")
}

// TestBrowserJobToast: the page a job's starter lands on, and any page
// after it, shows a toast with the job's live progress, then its outcome
// with a link to the job.
func TestBrowserJobToast(t *testing.T) {
	up := startHeldUpstream(t)
	srv := startServer(t, web.Config{Backend: sqliteDSN(t), Upstreams: []web.UpstreamConfig{upstream("slow", up.url)}})
	const n = 12
	for i := 0; i < n; i++ {
		wantCache(t, get(t, fmt.Sprintf("%s/fetch/slow/item/%d", srv.URL(), i)), "MISS")
	}
	up.hold.Store(true)
	id := startJob(t, srv, "default")

	b := newBrowser(t)
	run(t, b, emulate(desktop), chromedp.Navigate(srv.URL()+"/jobs/"+id+"?started=1"),
		chromedp.WaitVisible(byTestID("job-started"), chromedp.ByQuery),
		chromedp.WaitVisible(byTestID("job-toast"), chromedp.ByQuery))
	up.release(t, 4)
	waitJS(t, b, fieldIs(`[data-testid="job-toast-done"]`, "4"))
	if got := testText(t, b, "job-toast-total"); got != fmt.Sprint(n) {
		t.Errorf("toast total %q, want %d", got, n)
	}
	var value float64
	run(t, b, chromedp.Evaluate(`document.querySelector('[data-testid="job-toast-progress"]').value`, &value))
	if value != 4 {
		t.Errorf("toast progress %v, want 4", value)
	}
	screenshot(t, b, "job-toast-progress-desktop")

	// Another page: the toast picks the job up again and follows it.
	run(t, b, emulate(phone), chromedp.Navigate(srv.URL()+"/"), chromedp.WaitVisible(byTestID("job-toast-progress"), chromedp.ByQuery))
	up.release(t, 3)
	waitJS(t, b, fieldIs(`[data-testid="job-toast-done"]`, "7"))
	if got := testText(t, b, "job-toast-eta"); got == "" {
		t.Error("the toast shows no time left")
	}
	screenshot(t, b, "job-toast-progress-phone")
	// Dismissed, the progress toast stays away as the job goes on
	// (live.js handles each message before it dispatches it).
	run(t, b, chromedp.Evaluate(`window.lastDone = 0; document.addEventListener("cachegate:job", e => { window.lastDone = e.detail.job.done; })`, nil),
		chromedp.Click(byTestID("job-toast")+" .toast-close", chromedp.ByQuery),
		chromedp.WaitNotPresent(byTestID("job-toast"), chromedp.ByQuery))
	up.release(t, 1)
	waitJS(t, b, `window.lastDone >= 8`)
	if n := testCount(t, b, byTestID("job-toast")); n != 0 {
		t.Errorf("the dismissed progress toast came back (%d)", n)
	}
	// The outcome still comes.
	up.open()
	waitJS(t, b, `!!document.querySelector('[data-testid="job-toast"][data-state="done"]')`)
	if got, want := testText(t, b, "job-toast-outcome"), fmt.Sprintf("Revalidate of default finished: %d done, 0 failed of %d (not modified %d).", n, n, n); got != want {
		t.Errorf("toast outcome %q, want %q", got, want)
	}
	var href string
	run(t, b, chromedp.AttributeValue(byTestID("job-toast-link"), "href", &href, nil, chromedp.ByQuery))
	if href != "/jobs/"+id {
		t.Errorf("toast links to %q, want /jobs/%s", href, id)
	}
	screenshot(t, b, "job-toast-done-phone")
	run(t, b, darkMode(true))
	screenshot(t, b, "job-toast-done-phone-dark")
	browserErrors(t, b, "job toast")
}

// waitJobEnd waits over /ws, as a script with the token, until job id has
// ended.
func waitJobEnd(tb testing.TB, srv *web.Server, token, id string) {
	tb.Helper()
	u := "ws" + strings.TrimPrefix(srv.URL(), "http") + "/ws"
	conn, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		tb.Fatalf("dial /ws: %v (%v)", err, resp)
	}
	defer conn.Close()
	// Subscribed first, so asking now misses no end.
	if err := conn.WriteJSON(map[string][]string{"jobs": {id}}); err != nil {
		tb.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var m struct {
			Type string
			Job  struct{ ID, State string }
		}
		if err := conn.ReadJSON(&m); err != nil {
			tb.Fatalf("waiting for job %s to end: %v", id, err)
		}
		if m.Type == "job" && m.Job.ID == id && m.Job.State != "running" {
			return
		}
	}
}

// TestBrowserJobToastCatchesUp: signed in with the admin token, a job
// that ends while no page is open is toasted on the next page, which asks
// for it over /ws (the /api/ it used to ask takes no session cookie).
func TestBrowserJobToastCatchesUp(t *testing.T) {
	const token = "s3cret-token"
	up := startHeldUpstream(t)
	srv := startServer(t, web.Config{Backend: sqliteDSN(t), Upstreams: []web.UpstreamConfig{upstream("slow", up.url)}, AdminToken: token})
	const n = 5
	for i := 0; i < n; i++ {
		wantCache(t, get(t, fmt.Sprintf("%s/fetch/slow/item/%d", srv.URL(), i)), "MISS")
	}
	up.hold.Store(true)
	id := startJobWith(t, srv, "default", token)

	b := newBrowser(t)
	run(t, b, emulate(desktop), chromedp.Navigate(srv.URL()+"/jobs/"+id), chromedp.WaitVisible(byTestID("signin-form"), chromedp.ByQuery),
		chromedp.SendKeys(byTestID("signin-token"), token, chromedp.ByQuery),
		chromedp.Click(byTestID("signin-submit"), chromedp.ByQuery),
		chromedp.WaitVisible(jobCard(id), chromedp.ByQuery),
		chromedp.WaitVisible(byTestID("job-toast-progress"), chromedp.ByQuery))
	up.release(t, 2)
	waitJS(t, b, fieldIs(`[data-testid="job-toast-done"]`, "2"))
	// Away from the admin side while the job ends.
	run(t, b, chromedp.Navigate("about:blank"))
	up.open()
	waitJobEnd(t, srv, token, id)
	run(t, b, chromedp.Navigate(srv.URL()+"/backends"),
		chromedp.WaitVisible(`[data-testid="job-toast"][data-state="done"]`, chromedp.ByQuery))
	if got, want := testText(t, b, "job-toast-outcome"), fmt.Sprintf("Revalidate of default finished: %d done, 0 failed of %d (not modified %d).", n, n, n); got != want {
		t.Errorf("toast %q, want %q", got, want)
	}
	screenshot(t, b, "job-toast-caught-up-desktop")
	browserErrors(t, b, "job toast after catching up")
}

// TestBrowserJobsWithoutScripts: with scripts off the Jobs page still
// lists the jobs and its Cancel button, a plain form POST, cancels.
func TestBrowserJobsWithoutScripts(t *testing.T) {
	up := startHeldUpstream(t)
	srv := startServer(t, web.Config{Backend: sqliteDSN(t), Upstreams: []web.UpstreamConfig{upstream("slow", up.url)}})
	for i := 0; i < 3; i++ {
		wantCache(t, get(t, fmt.Sprintf("%s/fetch/slow/item/%d", srv.URL(), i)), "MISS")
	}
	up.hold.Store(true)
	id := startJob(t, srv, "default")
	b := newBrowser(t)
	run(t, b, emulation.SetScriptExecutionDisabled(true), emulate(desktop),
		chromedp.Navigate(srv.URL()+"/jobs"), chromedp.WaitVisible(jobCard(id)+".job-running", chromedp.ByQuery))
	if got := testText(t, b, "live-status"); got != "live updates need scripts" {
		t.Errorf("live status without scripts %q", got)
	}
	run(t, b, chromedp.Click(jobCard(id)+` [data-testid="job-cancel"]`, chromedp.ByQuery),
		chromedp.WaitVisible(byTestID("notice"), chromedp.ByQuery))
	if n := testCount(t, b, jobCard(id)+".job-cancelled"); n != 1 {
		t.Errorf("after cancelling without scripts the job shows as %s", testText(t, b, "job-state"))
	}
	screenshot(t, b, "jobs-noscript-cancelled-desktop")
	browserErrors(t, b, "/jobs without scripts")
}
