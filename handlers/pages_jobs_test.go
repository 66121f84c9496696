package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/handlers"
	"github.com/cachegate/cachegate/jobs"
	"github.com/go-chi/chi/v5"
)

// jobPages is the admin side with its pages over a SQLite backend, a
// memory backend "scratch" and a real upstream, on a clock the test sets,
// so the jobs it starts have known times, rates and order.
type jobPages struct {
	api    *handlers.API
	router chi.Router
	gw     *gateway.Gateway
	clock  *guardClock
}

func newJobPages(tb testing.TB) *jobPages {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "cache.db")
	db, err := sqlite.Open("sqlite://" + path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	scratch := memory.New(1 << 20)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = io.WriteString(w, "body of "+r.URL.Path)
	}))
	tb.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	p := cache.DefaultPolicy(cache.Expiry(time.Hour))
	gw, err := gateway.New(gateway.Options{}, gateway.Upstream{
		Name: "bin", URL: u, Policy: p, Backend: db, BackendName: "default", Timeout: 5 * time.Second,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { gw.Close() })
	clock := &guardClock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	api := handlers.NewAPI(nil, gw, handlers.Options{
		Backends: map[string]cache.Backend{"default": db, "scratch": scratch},
		DSNs:     map[string]string{"default": "sqlite://" + path, "scratch": "memory://"},
		Now:      clock.Now,
		Jobs:     jobs.Options{Now: clock.Now},
	})
	tb.Cleanup(api.Close)
	r := chi.NewRouter()
	api.Mount(r)
	api.MountPages(r)
	return &jobPages{api: api, router: r, gw: gw, clock: clock}
}

func (p *jobPages) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	p.router.ServeHTTP(w, r)
	return w
}

// page renders target and parses it, checking the status and that it is
// an HTML page.
func (p *jobPages) page(tb testing.TB, target string, wantStatus int) *goquery.Document {
	tb.Helper()
	w := p.serve(loopbackRequest(http.MethodGet, target, nil))
	if w.Code != wantStatus {
		tb.Fatalf("GET %s: status %d, want %d: %.300s", target, w.Code, wantStatus, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		tb.Fatalf("GET %s: Content-Type %q, want HTML", target, ct)
	}
	doc, err := goquery.NewDocumentFromReader(w.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return doc
}

// heldJob is a job of the test's that runs until released.
type heldJob struct {
	job     *jobs.Job
	release chan error // send the job's end: nil done, an error failed
}

// start starts a job of kind on target that reports total and the given
// progress at once, then waits for release (or its cancel); it returns
// result when released with nil. Each start is a second after the
// previous one on the clock.
func (p *jobPages) start(tb testing.TB, kind, target string, total, done int64, fails, skips []jobs.EntryError, result any) heldJob {
	tb.Helper()
	p.clock.Add(time.Second)
	h := heldJob{release: make(chan error)}
	ready := make(chan struct{})
	j, err := p.api.Jobs().Start(context.Background(), jobs.Spec{Kind: kind, Target: target}, func(ctx context.Context, j *jobs.Job) (any, error) {
		j.SetTotal(total)
		j.Add(done)
		for _, e := range fails {
			j.Fail(e)
		}
		for _, e := range skips {
			j.Skip(e)
		}
		close(ready)
		select {
		case err := <-h.release:
			return result, err
		case <-ctx.Done():
			return result, ctx.Err()
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	<-ready
	h.job = j
	return h
}

// end releases h with err and waits for it to end.
func (h heldJob) end(err error) {
	h.release <- err
	<-h.job.Done()
}

// card returns the job card of id on doc.
func card(tb testing.TB, doc *goquery.Document, id string) *goquery.Selection {
	tb.Helper()
	c := testid(doc, "job").Filter(`[data-job-id="` + id + `"]`)
	if c.Length() != 1 {
		tb.Fatalf("%d cards for job %s", c.Length(), id)
	}
	return c
}

func TestJobsPageEmpty(t *testing.T) {
	p := newJobPages(t)
	doc := p.page(t, "/jobs", http.StatusOK)
	if got, want := text(testid(doc, "page-title")), "Jobs"; got != want {
		t.Fatalf("title %q, want %q", got, want)
	}
	if n := testid(doc, "job").Length(); n != 0 {
		t.Fatalf("%d job cards on an empty registry", n)
	}
	if got := text(testid(doc, "empty-state")); !strings.Contains(got, "No jobs yet") || !strings.Contains(got, "1 h") {
		t.Errorf("empty state %q: want it to say there are none and how long they are kept", got)
	}
	if href, _ := testid(doc, "jobs-empty-entries").Attr("href"); href != "/entries" {
		t.Errorf("empty state links to %q, want /entries", href)
	}
	if _, ok := doc.Find(`[aria-current="page"]`).Attr("href"); !ok || text(doc.Find(`[aria-current="page"]`)) != "Jobs" {
		t.Errorf("the navigation does not mark Jobs as the current page")
	}
}

// TestJobsPageStates: the list shows each state the way it reads, newest
// first: a running job's progress, rate and time left, a finished job's
// counts per outcome, failures with reasons capped with "and N more" and
// a link to the result, a failed job's reason, a cancelled job.
func TestJobsPageStates(t *testing.T) {
	p := newJobPages(t)
	var fails []jobs.EntryError
	for i := 0; i < 5; i++ {
		fails = append(fails, jobs.EntryError{Key: fmt.Sprintf("key%d", i), Error: fmt.Sprintf("upstream answered 502 for entry %d", i)})
	}
	done := p.start(t, "revalidate", "default", 20, 14, fails, []jobs.EntryError{{Key: "keyS", Error: "the stored request had a body it cannot send again"}},
		handlers.RevalidateResult{NotModified: 10, Updated: 3, Gone: 1, Error: 5, Skipped: 1})
	p.clock.Add(5 * time.Second)
	done.end(nil)
	failed := p.start(t, "copy", "default → scratch", 8, 2, nil, nil, nil)
	failed.end(errors.New("scratch: store is full"))
	cancelled := p.start(t, "revalidate", "scratch", 4, 1, nil, nil, handlers.RevalidateResult{NotModified: 1})
	running := p.start(t, "revalidate", "default", 200, 40, []jobs.EntryError{{Key: "bad1", Error: "timeout"}}, nil, nil)
	defer running.end(nil)
	cancelled.job.Cancel()
	<-cancelled.job.Done()
	p.clock.Add(10 * time.Second) // the running job: 41 of 200 in 10 s

	doc := p.page(t, "/jobs", http.StatusOK)
	var order []string
	testid(doc, "job").Each(func(_ int, s *goquery.Selection) { order = append(order, s.AttrOr("data-job-id", "")) })
	if want := []string{running.job.ID(), cancelled.job.ID(), failed.job.ID(), done.job.ID()}; strings.Join(order, ",") != strings.Join(want, ",") {
		t.Fatalf("cards in order %v, want newest first %v", order, want)
	}

	r := card(t, doc, running.job.ID())
	for id, want := range map[string]string{
		"job-title": "Revalidate · default", "job-state": "running", "job-done": "40", "job-total": "200",
		"job-failed": "1", "job-skipped": "0", "job-rate": "4.1/s", "job-eta": "39 s", "job-ended-at": "still running",
	} {
		if got := text(testid(r, id)); got != want {
			t.Errorf("running job: %s = %q, want %q", id, got, want)
		}
	}
	if pr := testid(r, "job-progress"); pr.AttrOr("max", "") != "200" || pr.AttrOr("value", "") != "41" || pr.AttrOr("data-field", "") != "progress" {
		t.Errorf("running job's progress bar max=%q value=%q", pr.AttrOr("max", ""), pr.AttrOr("value", ""))
	}
	if testid(r, "job-outcome").Length() != 0 || testid(r, "job-result").Length() != 0 {
		t.Error("a running job shows an outcome")
	}
	form := testid(r, "job-cancel-form")
	if form.AttrOr("method", "") != "post" || form.AttrOr("action", "") != "/jobs/"+running.job.ID()+"/cancel" ||
		form.Find(`input[name="csrf_token"]`).AttrOr("value", "") == "" {
		t.Errorf("running job's cancel form: method %q action %q, CSRF field present %v",
			form.AttrOr("method", ""), form.AttrOr("action", ""), form.Find(`input[name="csrf_token"]`).Length() == 1)
	}

	d := card(t, doc, done.job.ID())
	if got, want := text(testid(d, "job-state")), "done"; got != want {
		t.Errorf("done job's state %q", got)
	}
	var counts []string
	testid(d, "job-outcome-count").Each(func(_ int, s *goquery.Selection) { counts = append(counts, text(s)) })
	if got, want := strings.Join(counts, ", "), "not modified 10, updated 3, gone 1, error 5, skipped 1"; got != want {
		t.Errorf("done job's outcome %q, want %q", got, want)
	}
	if n := testid(d, "job-issue").Length(); n != 3 {
		t.Errorf("the list shows %d of the done job's failures, want the first 3", n)
	}
	if got, want := text(testid(d, "job-issues-more")), "and 3 more — see the job"; got != want {
		t.Errorf("more issues %q, want %q", got, want)
	}
	first := testid(d, "job-issue").First()
	if got := text(testid(first, "job-issue-reason")); got != "upstream answered 502 for entry 0" {
		t.Errorf("first failure's reason %q", got)
	}
	if href := testid(first, "job-issue-key").AttrOr("href", ""); href != "/entries/key0" {
		t.Errorf("first failure links to %q, want the entry", href)
	}
	if got, want := testid(d, "job-result").AttrOr("href", ""), "/entries"; got != want {
		t.Errorf("done revalidation's result link %q, want %q", got, want)
	}
	if got, want := text(testid(d, "job-rate")), "4.0/s"; got != want {
		t.Errorf("done job's rate %q, want %q (20 entries in the 5 s it ran)", got, want)
	}
	if testid(d, "job-cancel-form").Length() != 0 {
		t.Error("a finished job offers a cancel button")
	}

	f := card(t, doc, failed.job.ID())
	if got, want := text(testid(f, "job-error")), "Stopped: scratch: store is full"; got != want {
		t.Errorf("failed job's error %q, want %q", got, want)
	}
	if got, want := testid(f, "job-result").AttrOr("href", ""), "/entries?backend=scratch"; got != want {
		t.Errorf("copy's result link %q, want %q", got, want)
	}
	c := card(t, doc, cancelled.job.ID())
	if got := text(testid(c, "job-state")); got != "cancelled" {
		t.Errorf("cancelled job's state %q", got)
	}
	if got, want := testid(c, "job-issue-key").Length(), 0; got != want {
		t.Errorf("cancelled job shows %d issues", got)
	}
}

// TestJobPage: one job in full shows every kept failure in a table with
// its entry linked on the job's backend; an unknown job is a readable 404.
func TestJobPage(t *testing.T) {
	p := newJobPages(t)
	var fails []jobs.EntryError
	for i := 0; i < 7; i++ {
		fails = append(fails, jobs.EntryError{Key: fmt.Sprintf("k%d", i), Error: "gone wrong"})
	}
	h := p.start(t, "revalidate", "scratch", 7, 0, fails, nil, handlers.RevalidateResult{Error: 7})
	h.end(nil)
	doc := p.page(t, "/jobs/"+h.job.ID(), http.StatusOK)
	if got, want := text(testid(doc, "page-title")), "Revalidate · scratch"; got != want {
		t.Errorf("title %q, want %q", got, want)
	}
	if n := testid(doc, "job-issue").Length(); n != 7 {
		t.Errorf("%d failures shown, want all 7", n)
	}
	if testid(doc, "job-issues").Is("table") != true {
		t.Error("the job's page lists failures outside a table")
	}
	if href := testid(doc, "job-issue-key").First().AttrOr("href", ""); href != "/entries/k0?backend=scratch" {
		t.Errorf("failure links to %q, want the entry on scratch", href)
	}
	if testid(doc, "job-issues-more").Length() != 0 {
		t.Error("says 'and N more' with every failure shown")
	}
	if testid(doc, "job-started").Length() != 0 {
		t.Error("a finished job's page says it just started")
	}

	doc = p.page(t, "/jobs/nosuchjob", http.StatusNotFound)
	if got := text(testid(doc, "error-title")); got != `There is no job "nosuchjob"` {
		t.Errorf("404 title %q", got)
	}
	if got := text(testid(doc, "error-hint")); !strings.Contains(got, "kept for 1 h") {
		t.Errorf("404 hint %q", got)
	}
	p.page(t, "/jobs/"+h.job.ID()+"?colour=red", http.StatusBadRequest)
}

// TestJobPageStarted: the page a job's starter lands on watches it, so
// live.js toasts its progress on the next pages too.
func TestJobPageStarted(t *testing.T) {
	p := newJobPages(t)
	h := p.start(t, "copy", "default → scratch", 10, 0, nil, nil, nil)
	defer h.end(nil)
	doc := p.page(t, "/jobs/"+h.job.ID()+"?started=1", http.StatusOK)
	n := testid(doc, "job-started")
	if n.Length() != 1 || n.AttrOr("data-job-id", "") != h.job.ID() {
		t.Fatalf("started notice %d, job id %q", n.Length(), n.AttrOr("data-job-id", ""))
	}
	if _, ok := n.Attr("data-job-watch"); !ok {
		t.Error("the started notice does not ask live.js to watch the job")
	}
}

// TestJobCardFragment: the card jobs.js swaps in is the card alone, in
// the state of now.
func TestJobCardFragment(t *testing.T) {
	p := newJobPages(t)
	h := p.start(t, "revalidate", "default", 3, 1, nil, nil, handlers.RevalidateResult{NotModified: 3})
	doc := p.page(t, "/jobs/"+h.job.ID()+"/card", http.StatusOK)
	if got := text(testid(card(t, doc, h.job.ID()), "job-state")); got != "running" {
		t.Fatalf("card state %q", got)
	}
	if doc.Find("header, nav").Length() != 0 {
		t.Error("the card fragment carries the page's frame")
	}
	h.end(nil)
	doc = p.page(t, "/jobs/"+h.job.ID()+"/card?detail=true", http.StatusOK)
	c := card(t, doc, h.job.ID())
	if text(testid(c, "job-state")) != "done" || c.AttrOr("data-detail", "") != "true" || testid(c, "job-outcome-count").Length() != 5 {
		t.Errorf("card after the end: %s", text(c))
	}
	p.page(t, "/jobs/nosuchjob/card", http.StatusNotFound)
}

// TestJobCancelPage: the Cancel button cancels with the form's CSRF token
// and returns to the page it was on; without the token nothing happens;
// a finished or unknown job is a readable page.
func TestJobCancelPage(t *testing.T) {
	p := newJobPages(t)
	h := p.start(t, "revalidate", "default", 10, 2, nil, nil, nil)
	doc := p.page(t, "/jobs", http.StatusOK)
	csrf := testid(card(t, doc, h.job.ID()), "job-cancel-form").Find(`input[name="csrf_token"]`).AttrOr("value", "")
	post := func(id string, form url.Values, header ...string) *httptest.ResponseRecorder {
		r := loopbackRequest(http.MethodPost, "/jobs/"+id+"/cancel", strings.NewReader(form.Encode()),
			append([]string{"Content-Type", "application/x-www-form-urlencoded"}, header...)...)
		return p.serve(r)
	}

	for _, tc := range []struct {
		name   string
		form   url.Values
		header []string
	}{
		{"no token", url.Values{"from": {"list"}}, nil},
		{"wrong token", url.Values{"csrf_token": {"x" + csrf}, "from": {"list"}}, nil},
		{"from another site", url.Values{"csrf_token": {csrf}, "from": {"list"}}, []string{"Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := post(h.job.ID(), tc.form, tc.header...)
			if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `data-testid="error-title"`) {
				t.Fatalf("got %d %.200s, want a readable 403", w.Code, w.Body)
			}
			if s := h.job.Snapshot().State; s != jobs.Running {
				t.Fatalf("the job is %s after a refused cancel", s)
			}
		})
	}

	w := post(h.job.ID(), url.Values{"csrf_token": {csrf}, "from": {"list"}}, "Origin", "http://127.0.0.1:8080", "Sec-Fetch-Site", "same-origin")
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/jobs?cancelled="+h.job.ID() {
		t.Fatalf("cancel: %d to %q, want 303 to the list", w.Code, w.Header().Get("Location"))
	}
	<-h.job.Done()
	if s := h.job.Snapshot().State; s != jobs.Cancelled {
		t.Fatalf("job %s after cancel, want cancelled", s)
	}
	doc = p.page(t, w.Header().Get("Location"), http.StatusOK)
	if got := text(testid(doc, "notice")); !strings.Contains(got, "Cancelling job "+h.job.ID()) {
		t.Errorf("notice after cancel %q", got)
	}
	if got := text(testid(card(t, doc, h.job.ID()), "job-state")); got != "cancelled" {
		t.Errorf("state after cancel %q", got)
	}

	// Again: the job has ended; the page says so and changes nothing.
	w = post(h.job.ID(), url.Values{"csrf_token": {csrf}, "from": {"detail"}})
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "This job already ended: it is cancelled") {
		t.Fatalf("cancelling an ended job: %d %.300s", w.Code, w.Body)
	}
	w = post("nosuchjob", url.Values{"csrf_token": {csrf}})
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), `There is no job &#34;nosuchjob&#34;`) {
		t.Fatalf("cancelling an unknown job: %d %.300s", w.Code, w.Body)
	}

	// From the job's own page, back to it.
	h2 := p.start(t, "copy", "default → scratch", 10, 0, nil, nil, nil)
	w = post(h2.job.ID(), url.Values{"csrf_token": {csrf}, "from": {"detail"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/jobs/"+h2.job.ID()+"?cancelled=1" {
		t.Fatalf("cancel from the job page: %d to %q", w.Code, w.Header().Get("Location"))
	}
	<-h2.job.Done()
}

// TestJobsPageRealRevalidation: a bulk revalidation started through the
// API over real entries ends with its outcome on the page: not modified
// for the ones whose upstream answers 304, errors with the upstream's
// answer for the ones it fails.
func TestJobsPageRealRevalidation(t *testing.T) {
	p := newJobPages(t)
	for _, path := range []string{"/a", "/b", "/c"} {
		rec := httptest.NewRecorder()
		p.gw.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/fetch/bin"+path, nil))
		if rec.Header().Get("X-Cache") != "MISS" {
			t.Fatalf("GET %s: X-Cache %q", path, rec.Header().Get("X-Cache"))
		}
	}
	w := p.serve(loopbackRequest(http.MethodPost, "/api/revalidate", strings.NewReader(`{}`), "Content-Type", "application/json"))
	if w.Code != http.StatusAccepted {
		t.Fatalf("POST /api/revalidate: %d %s", w.Code, w.Body)
	}
	id := strings.TrimPrefix(w.Header().Get("Location"), "/api/jobs/")
	j, err := p.api.Jobs().Get(id)
	if err != nil {
		t.Fatal(err)
	}
	<-j.Done()
	doc := p.page(t, "/jobs/"+id, http.StatusOK)
	c := card(t, doc, id)
	var counts []string
	testid(c, "job-outcome-count").Each(func(_ int, s *goquery.Selection) { counts = append(counts, text(s)) })
	if got, want := strings.Join(counts, ", "), "not modified 3, updated 0, gone 0, error 0, skipped 0"; got != want {
		t.Errorf("outcome %q, want %q", got, want)
	}
	if got := text(testid(c, "job-done")) + "/" + text(testid(c, "job-total")); got != "3/3" {
		t.Errorf("done/total %s", got)
	}
	if got, want := testid(c, "job-result").AttrOr("href", ""), "/entries"; got != want {
		t.Errorf("result of a revalidation of everything links to %q, want %q", got, want)
	}

	// A filtered revalidation links to the entries its filter lists.
	w = p.serve(loopbackRequest(http.MethodPost, "/api/revalidate", strings.NewReader(`{"filter": {"upstream": "bin", "url": "/b"}}`), "Content-Type", "application/json"))
	if w.Code != http.StatusAccepted {
		t.Fatalf("POST /api/revalidate: %d %s", w.Code, w.Body)
	}
	id = strings.TrimPrefix(w.Header().Get("Location"), "/api/jobs/")
	if j, err = p.api.Jobs().Get(id); err != nil {
		t.Fatal(err)
	}
	<-j.Done()
	c = card(t, p.page(t, "/jobs", http.StatusOK), id)
	if got, want := testid(c, "job-result").AttrOr("href", ""), "/entries?upstream=bin&url=%2Fb"; got != want {
		t.Errorf("result of a filtered revalidation links to %q, want %q", got, want)
	}
	if got := text(testid(c, "job-done")); got != "1" {
		t.Errorf("filtered revalidation did %s entries, want 1", got)
	}
}
