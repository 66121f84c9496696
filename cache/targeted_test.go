package cache_test

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/cachegate/cachegate/cache"
)

// A targeted field is a Structured Field Dictionary (RFC 9213 section
// 2.1): one that does not parse is ignored whole, so Cache-Control governs;
// a directive with a value of the wrong type is dropped.
func TestResponseCacheControlTargetedFieldSyntax(t *testing.T) {
	p := cache.DefaultPolicy(0)
	p.Mode = cache.ModeRFC9111
	cases := []struct {
		name      string
		targeted  []string
		wantField string
		want      cache.Directives
	}{
		{"a dictionary", []string{"max-age=60, no-cache, private=\"Set-Cookie\""}, "CDN-Cache-Control",
			cache.Directives{"max-age": "60", "no-cache": "", "private": "Set-Cookie"}},
		{"two lines are one dictionary", []string{"max-age=60", "must-revalidate"}, "CDN-Cache-Control",
			cache.Directives{"max-age": "60", "must-revalidate": ""}},
		{"parameters and an inner list parse", []string{"max-age=60;x=1, foo=(a b);y"}, "CDN-Cache-Control",
			cache.Directives{"max-age": "60"}},
		{"Boolean false is absent", []string{"max-age=60, no-store=?0"}, "CDN-Cache-Control",
			cache.Directives{"max-age": "60"}},
		{"the last value of a key wins", []string{"max-age=60, max-age=5"}, "CDN-Cache-Control",
			cache.Directives{"max-age": "5"}},
		{"an unknown character: ignored", []string{"max-age=10000, &&&&&"}, "Cache-Control", cache.Directives{"no-store": ""}},
		{"upper-case key: ignored", []string{"MaX-aGe=3600"}, "Cache-Control", cache.Directives{"no-store": ""}},
		{"trailing comma: ignored", []string{"max-age=60,"}, "Cache-Control", cache.Directives{"no-store": ""}},
		{"space before =: ignored", []string{"max-age =60"}, "Cache-Control", cache.Directives{"no-store": ""}},
		{"unterminated string: ignored", []string{`no-cache="a`}, "Cache-Control", cache.Directives{"no-store": ""}},
		{"a String max-age is dropped", []string{`max-age="10000"`}, "Cache-Control", cache.Directives{"no-store": ""}},
		{"a Decimal max-age is dropped, the rest stays", []string{"max-age=1.5, no-cache"}, "CDN-Cache-Control",
			cache.Directives{"no-cache": ""}},
		{"empty: ignored", []string{" "}, "Cache-Control", cache.Directives{"no-store": ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{"Cache-Control": {"no-store"}, "Cdn-Cache-Control": c.targeted}
			got, field := p.ResponseCacheControl(h)
			if field != c.wantField || !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %v from %s, want %v from %s", got, field, c.want, c.wantField)
			}
		})
	}
}
