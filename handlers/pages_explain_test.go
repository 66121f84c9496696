package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
)

// explainURL is the Explain page's address for the form's values.
func explainURL(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return "/explain?" + q.Encode()
}

// chainStates reads the rule chain as "rule pattern=state".
func chainStates(doc *goquery.Document) []string {
	return testid(doc, "chain-step").Map(func(_ int, s *goquery.Selection) string {
		return strings.TrimSpace(s.AttrOr("data-rule", "")+" "+s.AttrOr("data-pattern", "")) + "=" + s.AttrOr("data-state", "")
	})
}

func TestExplainPageEmptyForm(t *testing.T) {
	s := newRuleSite(t)
	doc := s.get(t, "/explain", http.StatusOK)
	if testid(doc, "explain-form").Length() != 1 || testid(doc, "empty-state").Length() != 1 || testid(doc, "explanation").Length() != 0 {
		t.Fatal("the empty Explain page shows no form, or an explanation")
	}
	if got := testid(doc, "explain-form").AttrOr("method", ""); got != "get" {
		t.Errorf("form method %q: the explanation must be a link", got)
	}
	opts := testid(doc, "explain-upstream").Find("option").Map(func(_ int, o *goquery.Selection) string { return o.AttrOr("value", "") })
	if strings.Join(opts, ",") != ",api,rfc" {
		t.Errorf("upstream choices %v", opts)
	}
}

// Each way of writing a URL maps to its upstream and the same key.
func TestExplainPageMapsURLs(t *testing.T) {
	s := newRuleSite(t)
	s.fetchVia(t, "api", "/repos/a", "MISS")
	var key string
	for _, c := range []struct{ name, target string }{
		{"fetch path", explainURL("url", "/fetch/api/repos/a")},
		{"gateway URL", explainURL("url", "http://127.0.0.1:8080/fetch/api/repos/a")},
		{"upstream URL", explainURL("url", s.upstream+"/repos/a")},
		{"path with upstream", explainURL("url", "/repos/a", "upstream", "api")},
		{"gateway URL with upstream", explainURL("url", "http://gateway.internal/fetch/api/repos/a", "upstream", "api")},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := s.get(t, c.target, http.StatusOK)
			if got := testid(doc, "explain-upstream-name").Text(); got != "api" {
				t.Fatalf("upstream %q, want api", got)
			}
			k := testid(doc, "explain-key").Text()
			if key == "" {
				key = k
			} else if k != key {
				t.Fatalf("key %q, the other forms gave %q", k, key)
			}
			if got := testid(doc, "cached-answer").Text(); got != "HIT" {
				t.Errorf("answer now %q, want HIT", got)
			}
			if got, want := testid(doc, "cached-link").AttrOr("href", ""), "/entries/"+key; got != want {
				t.Errorf("entry link %q, want %q", got, want)
			}
			if got := testid(doc, "verdict").AttrOr("data-store", ""); got != "true" {
				t.Errorf("verdict store=%q", got)
			}
		})
	}
}

// The rule chain lists the rules in order and marks the one that decided.
func TestExplainPageRuleChain(t *testing.T) {
	s := newRuleSite(t)
	for _, c := range []struct {
		url  string
		want string
	}{
		{"/fetch/api/repos/x", "cache_control=no_match,request Cache-Control: max-age=no_match,request X-Cachegate-Expire-After=no_match,urls_expire_after /repos/*=won,urls_expire_after /users/*=not_reached,urls_expire_after /static/*=not_reached,expire_after=not_reached"},
		{"/fetch/api/static/x.js", "cache_control=no_match,request Cache-Control: max-age=no_match,request X-Cachegate-Expire-After=no_match,urls_expire_after /repos/*=no_match,urls_expire_after /users/*=no_match,urls_expire_after /static/*=won,expire_after=not_reached"},
		{"/fetch/api/other", "cache_control=no_match,request Cache-Control: max-age=no_match,request X-Cachegate-Expire-After=no_match,urls_expire_after /repos/*=no_match,urls_expire_after /users/*=no_match,urls_expire_after /static/*=no_match,expire_after=won"},
	} {
		doc := s.get(t, explainURL("url", c.url), http.StatusOK)
		if got := strings.Join(chainStates(doc), ","); got != c.want {
			t.Errorf("%s: chain\n %s\nwant\n %s", c.url, got, c.want)
		}
		won := testid(doc, "chain-step").Filter(".won")
		if won.Length() != 1 || testid(won, "chain-won").Length() != 1 || won.AttrOr("aria-current", "") != "true" {
			t.Errorf("%s: the winning rule is not marked once", c.url)
		}
	}
	doc := s.get(t, explainURL("url", "/fetch/api/static/x.js"), http.StatusOK)
	if got := testid(doc, "verdict").AttrOr("data-store", ""); got != "false" {
		t.Errorf("do_not_cache: verdict store=%q", got)
	}
	if got := testid(doc, "verdict-reason").Text(); !strings.Contains(got, "do_not_cache") {
		t.Errorf("do_not_cache: reason %q", got)
	}
}

// A response the gateway fetched and did not store is reported from
// what the upstream really said.
func TestExplainPageLastNotStored(t *testing.T) {
	s := newRuleSite(t)
	s.fetchVia(t, "api", "/nostore", "MISS")
	doc := s.get(t, explainURL("url", "/fetch/api/nostore"), http.StatusOK)
	if got := testid(doc, "verdict").AttrOr("data-store", ""); got != "false" {
		t.Errorf("verdict store=%q", got)
	}
	if got := testid(doc, "last-not-stored-status").Text(); got != "200" {
		t.Errorf("last not stored status %q", got)
	}
	if got := testid(doc, "last-not-stored-reason").Text(); !strings.Contains(got, "no-store") {
		t.Errorf("last not stored reason %q", got)
	}
	if testid(doc, "cached-none").Length() != 1 {
		t.Error("an entry is shown for a response that was not stored")
	}
	if testid(doc, "chain-step").Filter(".won").Length() != 0 || testid(doc, "chain-decided-before").Length() != 1 {
		t.Error("a refusal before the expiry rules marks a rule as the winner")
	}
}

// Secrets typed into the form (an ignored parameter, a credential) are
// not written back into the page, neither in the explanation nor in the
// form.
func TestExplainPageRedacts(t *testing.T) {
	s := newRuleSite(t)
	code, body := s.raw(t, explainURL("url", "http://127.0.0.1:8080/fetch/api/repos/a?api_key=SECRET1&v=2",
		"headers", "Authorization: Bearer SECRET2\nX-Api-Key: v\nAccept-Language: de"))
	if code != http.StatusOK {
		t.Fatalf("status %d: %.400s", code, body)
	}
	for _, secret := range []string{"SECRET1", "SECRET2"} {
		if strings.Contains(body, secret) {
			t.Errorf("the page shows %s", secret)
		}
	}
	doc, _ := goquery.NewDocumentFromReader(strings.NewReader(body))
	if got := testid(doc, "explain-url").AttrOr("value", ""); got != "http://127.0.0.1:8080/fetch/api/repos/a?api_key=REDACTED&v=2" {
		t.Errorf("the form's URL shows %q", got)
	}
	if got := testid(doc, "explain-headers").Text(); !strings.Contains(got, "Authorization: REDACTED") || !strings.Contains(got, "Accept-Language: de") {
		t.Errorf("the form's headers show %q", got)
	}
	parts := testid(doc, "key-part-name").Map(func(_ int, p *goquery.Selection) string { return p.Text() })
	if !strings.Contains(strings.Join(parts, ","), "header Accept-Language") {
		t.Errorf("match_headers missing from the key parts %v", parts)
	}
}

// Every mistake a user can make in the form is a readable message above
// the form they filled in, never JSON.
func TestExplainPageBadInputs(t *testing.T) {
	s := newRuleSite(t)
	for _, c := range []struct {
		name   string
		target string
		status int
		want   string
	}{
		{"no upstream matches", explainURL("url", "/items/1"), http.StatusBadRequest, "No upstream matches this URL: configured ones are api ("},
		{"foreign host", explainURL("url", "https://elsewhere.example/x"), http.StatusBadRequest, "No upstream matches this URL"},
		{"unknown upstream", explainURL("url", "/x", "upstream", "nope"), http.StatusNotFound, `Unknown upstream "nope"; configured upstreams: api, rfc`},
		{"url off the upstream", explainURL("url", "https://elsewhere.example/x", "upstream", "api"), http.StatusBadRequest, "is not on upstream"},
		{"climbing out", explainURL("url", "/fetch/api/a/../../etc/passwd"), http.StatusBadRequest, "climbs out"},
		{"bad header line", explainURL("url", "/fetch/api/x", "headers", "Accept: a\nnot a header"), http.StatusBadRequest, `not a header: "not a header"`},
		{"bad method", explainURL("url", "/fetch/api/x", "method", "GE T"), http.StatusBadRequest, "is not an HTTP method"},
		{"no url", explainURL("method", "GET"), http.StatusBadRequest, "Give a URL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := s.get(t, c.target, c.status)
			if got := testid(doc, "explain-error-title").Text(); !strings.Contains(got, c.want) {
				t.Fatalf("message %q, want it to contain %q", got, c.want)
			}
			if testid(doc, "explain-error-hint").Text() == "" || testid(doc, "explain-form").Length() != 1 {
				t.Fatal("no hint, or no form to correct")
			}
			if testid(doc, "explanation").Length() != 0 {
				t.Fatal("an explanation beside the error")
			}
		})
	}
	doc := s.get(t, "/explain?header=x", http.StatusBadRequest)
	if got := testid(doc, "error-title").Text(); !strings.Contains(got, "header") {
		t.Errorf("unknown parameter: %q", got)
	}
}

// A method the upstream does not cache passes through.
func TestExplainPageNotCacheable(t *testing.T) {
	s := newRuleSite(t)
	doc := s.get(t, explainURL("url", "/fetch/api/x", "method", "post"), http.StatusOK)
	if got := testid(doc, "verdict").Text(); !strings.Contains(got, "passes through") || !strings.Contains(got, "allowable_methods") {
		t.Errorf("verdict %q", got)
	}
	if got := testid(doc, "explain-method-value").Text(); got != "POST" {
		t.Errorf("method %q", got)
	}
}

// GET /api/explain finds the upstream from the URL too, and returns the
// rule chain the page shows.
func TestAPIExplainResolvesAndChains(t *testing.T) {
	s := newRuleSite(t)
	code, body := s.raw(t, "/api/explain?"+url.Values{"url": {s.upstream + "/users/x"}}.Encode())
	if code != http.StatusOK {
		t.Fatalf("GET /api/explain: %d %s", code, body)
	}
	var x struct {
		Upstream string
		Chain    []struct {
			Rule, Pattern, State string
			Won                  bool
		} `json:"rule_chain"`
	}
	if err := json.Unmarshal([]byte(body), &x); err != nil {
		t.Fatal(err)
	}
	if x.Upstream != "api" || len(x.Chain) != 7 || !x.Chain[4].Won || x.Chain[4].Pattern != "/users/*" || x.Chain[3].State != "no_match" {
		t.Fatalf("explanation: %s", body)
	}
	code, body = s.raw(t, "/api/explain?url=/items")
	if code != http.StatusBadRequest || !strings.Contains(body, `"code":"no_upstream"`) || !strings.Contains(body, "configured ones are api") {
		t.Fatalf("a URL no upstream takes: %d %s", code, body)
	}
	code, body = s.raw(t, "/api/explain?upstream=api")
	if code != http.StatusBadRequest || !strings.Contains(body, "url is required") {
		t.Fatalf("no url: %d %s", code, body)
	}
}
