package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// A page on another site, open in the operator's browser, cannot drive the
// admin side: neither a form posted to the Entries page's bulk delete
// (with a made-up CSRF token) nor a script's text/plain POST to
// /api/delete (a "simple" request, sent without a preflight) deletes
// anything. The browser sends its own Origin and Sec-Fetch-Site; nothing
// in the test forges them.
func TestBrowserCrossSitePostsAreRefused(t *testing.T) {
	srv := startUIServer(t, "")
	before := entryCount(t, srv.URL())
	if before == 0 {
		t.Fatal("no entries to protect")
	}
	// The attacker's site: localhost, where cachegate is on 127.0.0.1, so
	// another origin and another site.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		switch r.URL.Path {
		case "/form":
			fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s/entries/delete">
<input name="csrf_token" value="guess"><input name="all" value="1"><input name="confirm" value="1"></form>
<script>document.getElementById("f").submit()</script>`, srv.URL())
		case "/fetch":
			fmt.Fprintf(w, `<!doctype html><p id="out">waiting</p><script>
fetch(%q, {method: "POST", mode: "no-cors", credentials: "include", headers: {"Content-Type": "text/plain"}, body: '{"all": true}'})
  .then(() => { document.getElementById("out").textContent = "sent" }, (e) => { document.getElementById("out").textContent = "failed: " + e })
</script>`, srv.URL()+"/api/delete")
		}
	}))
	t.Cleanup(evil.Close)
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)

	b := newBrowser(t)
	var body string
	run(t, b, chromedp.Navigate(evilURL+"/form"),
		chromedp.WaitVisible(`body [data-testid="error-title"], body pre, body h1`, chromedp.ByQuery),
		chromedp.Text("body", &body, chromedp.ByQuery))
	if !strings.Contains(location(t, b), srv.URL()) {
		t.Fatalf("the form did not reach cachegate: at %s", location(t, b))
	}
	screenshot(t, b, "crosssite-form-refused")
	if got := entryCount(t, srv.URL()); got != before {
		t.Fatalf("a cross-site form post left %d of %d entries", got, before)
	}
	t.Logf("cross-site form answered: %.200s", strings.Join(strings.Fields(body), " "))

	var out string
	var settled bool
	run(t, b, chromedp.Navigate(evilURL+"/fetch"),
		chromedp.WaitVisible(`#out`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("out").textContent !== "waiting"`, &settled),
		chromedp.Text("#out", &out, chromedp.ByQuery))
	if got := entryCount(t, srv.URL()); got != before {
		t.Fatalf("a cross-site text/plain POST (%s) left %d of %d entries", out, got, before)
	}
}

// entryCount is the default backend's entry count from the API.
func entryCount(tb testing.TB, base string) int {
	tb.Helper()
	a := get(tb, base+"/api/entries?limit=1")
	var list struct {
		Total struct {
			Entries int `json:"entries"`
		} `json:"total"`
	}
	if a.status != http.StatusOK || json.Unmarshal([]byte(a.body), &list) != nil {
		tb.Fatalf("GET /api/entries: %d %s", a.status, a.body)
	}
	return list.Total.Entries
}
