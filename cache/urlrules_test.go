package cache_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// urls_expire_after takes regular expressions (re:) beside globs; the
// first match wins across both.
func TestURLRulesRegexpAndGlob(t *testing.T) {
	rule := func(rules ...cache.URLRule) *cache.Policy {
		p := cache.DefaultPolicy(cache.Expiry(time.Hour))
		p.URLsExpireAfter = rules
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		return &p
	}
	re := cache.URLRule{Pattern: `re:^/users/\d+$`, Expire: cache.Expiry(time.Minute)}
	glob := cache.URLRule{Pattern: "/users/*", Expire: cache.Expiry(2 * time.Hour)}
	host := cache.URLRule{Pattern: `re:api\.example\.com/v\d/`, Expire: cache.NeverExpire}
	for _, c := range []struct {
		rules []cache.URLRule
		path  string
		want  string // the winning pattern, "" for none
	}{
		{[]cache.URLRule{re, glob}, "/users/12", re.Pattern},
		{[]cache.URLRule{re, glob}, "/users/abc", glob.Pattern},
		{[]cache.URLRule{glob, re}, "/users/12", glob.Pattern}, // first match wins
		{[]cache.URLRule{re}, "/users/12/repos", ""},           // anchored by the expression
		{[]cache.URLRule{host}, "/v2/items", host.Pattern},     // searched in the URL without scheme
		{[]cache.URLRule{host}, "/items", ""},
	} {
		p := rule(c.rules...)
		req := cache.Request{Method: "GET", Path: c.path, URL: "api.example.com" + c.path}
		got, ok := p.MatchURLRule(req)
		if (c.want == "") != !ok || (ok && got.Pattern != c.want) {
			t.Errorf("%v on %s: matched %q (%v), want %q", c.rules, c.path, got.Pattern, ok, c.want)
		}
	}
	p := cache.DefaultPolicy(cache.Expiry(time.Hour))
	p.URLsExpireAfter = []cache.URLRule{{Pattern: "re:(unclosed", Expire: 1}}
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), `urls_expire_after: pattern "re:(unclosed" is not a regular expression`) {
		t.Fatalf("Validate of a bad expression: %v", err)
	}
}
