package cache_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// Decide keeps personal responses out of a shared cache in both modes,
// whatever cache_control says, and lets private_cache store private ones.
func TestDecidePersonalResponses(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name   string
		mode   cache.Mode
		mut    func(*cache.Policy)
		header []string // response header pairs
		store  bool
		rule   string // when not stored
		reason string // a part of Reason
	}{
		{name: "no-store", header: []string{"Cache-Control", "no-store"}, rule: "Cache-Control: no-store"},
		{name: "no-store with cache_control", mut: func(p *cache.Policy) { p.CacheControl = true }, header: []string{"Cache-Control", "no-store, max-age=60"}, rule: "Cache-Control: no-store"},
		{name: "no-store over a never pattern", mut: func(p *cache.Policy) { p.URLsExpireAfter = []cache.URLRule{{Pattern: "*", Expire: cache.NeverExpire}} }, header: []string{"Cache-Control", "no-store"}, rule: "Cache-Control: no-store"},
		{name: "rfc9111 no-store", mode: cache.ModeRFC9111, header: []string{"Cache-Control", "no-store, max-age=60"}, rule: "Cache-Control: no-store"},
		{name: "rfc9111 no-store with must-understand", mode: cache.ModeRFC9111, header: []string{"Cache-Control", "no-store, must-understand, max-age=60"}, store: true},
		{name: "private", header: []string{"Cache-Control", "private"}, rule: "Cache-Control: private", reason: "private_cache"},
		{name: "private, private_cache", mut: func(p *cache.Policy) { p.PrivateCache = true }, header: []string{"Cache-Control", "private"}, store: true, reason: "expire_after"},
		{name: "private naming a field", header: []string{"Cache-Control", `private="X-User"`}, store: true},
		{name: "rfc9111 private", mode: cache.ModeRFC9111, header: []string{"Cache-Control", "private, max-age=60"}, rule: "Cache-Control: private"},
		{name: "rfc9111 private, private_cache", mode: cache.ModeRFC9111, mut: func(p *cache.Policy) { p.PrivateCache = true }, header: []string{"Cache-Control", "private, max-age=60"}, store: true},
		{name: "Set-Cookie", header: []string{"Set-Cookie", "sid=1"}, store: true, reason: "Set-Cookie went only to the client"},
		{name: "rfc9111 Set-Cookie", mode: cache.ModeRFC9111, header: []string{"Set-Cookie", "sid=1", "Cache-Control", "max-age=60"}, rule: "Set-Cookie"},
		{name: "rfc9111 Set-Cookie, private_cache", mode: cache.ModeRFC9111, mut: func(p *cache.Policy) { p.PrivateCache = true }, header: []string{"Set-Cookie", "sid=1", "Cache-Control", "max-age=60"}, store: true, reason: "Set-Cookie went only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := cache.DefaultPolicy(cache.Expiry(time.Hour))
			if tc.mode != "" {
				p.Mode = tc.mode
			}
			if tc.mut != nil {
				tc.mut(&p)
			}
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			for i := 0; i+1 < len(tc.header); i += 2 {
				h.Add(tc.header[i], tc.header[i+1])
			}
			d := p.Decide(cache.Request{Method: "GET", URL: "x.example/a", Path: "/a", Header: http.Header{}},
				cache.Response{Status: 200, Header: h, RequestTime: now, ResponseTime: now, Size: 2})
			if d.Store != tc.store {
				t.Fatalf("Store = %v, want %v (%s: %s)", d.Store, tc.store, d.Rule, d.Reason)
			}
			if !tc.store && d.Rule != tc.rule {
				t.Errorf("Rule = %q, want %q", d.Rule, tc.rule)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("Reason = %q, want it to mention %q", d.Reason, tc.reason)
			}
		})
	}
}

func TestIgnoredParametersAndCredentials(t *testing.T) {
	p := cache.Policy{IgnoredParameters: []string{"api_key", "Authorization"}}
	cases := []struct {
		name             string
		ignored, keyed   bool
		keyedWhenShared  bool
		credentialHeader bool
	}{
		{name: "api_key", ignored: true, keyed: true, keyedWhenShared: true},
		{name: "API_KEY", ignored: true, keyed: true, keyedWhenShared: true},
		{name: "authorization", ignored: true, keyed: true, keyedWhenShared: false, credentialHeader: true},
		{name: "Cookie", keyed: true, keyedWhenShared: true, credentialHeader: true},
		{name: "q", keyed: true, keyedWhenShared: true},
	}
	shared := p
	shared.ShareCredentialedResponses = true
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.IsIgnored(tc.name); got != tc.ignored {
				t.Errorf("IsIgnored = %v, want %v", got, tc.ignored)
			}
			if got := cache.IsCredential(tc.name); got != tc.credentialHeader {
				t.Errorf("IsCredential = %v, want %v", got, tc.credentialHeader)
			}
			if !tc.credentialHeader {
				return
			}
			if got := p.KeysCredential(tc.name); got != tc.keyed {
				t.Errorf("KeysCredential = %v, want %v", got, tc.keyed)
			}
			if got := shared.KeysCredential(tc.name); got != tc.keyedWhenShared {
				t.Errorf("with share_credentialed_responses: KeysCredential = %v, want %v", got, tc.keyedWhenShared)
			}
		})
	}
}

func TestPolicyWarnings(t *testing.T) {
	cases := []struct {
		name    string
		ignored []string
		share   bool
		want    []string // names the warnings are about
	}{
		{"none", nil, false, nil},
		{"no credential", []string{"access_token"}, false, nil},
		{"Authorization", []string{"access_token", "Authorization"}, false, []string{"Authorization"}},
		{"two in any case", []string{"cookie", "PROXY-AUTHORIZATION"}, false, []string{"cookie", "PROXY-AUTHORIZATION"}},
		{"opted in", []string{"Authorization"}, true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := cache.Policy{IgnoredParameters: tc.ignored, ShareCredentialedResponses: tc.share}
			ws := p.Warnings()
			if len(ws) != len(tc.want) {
				t.Fatalf("%d warnings %+v, want %d", len(ws), ws, len(tc.want))
			}
			for i, w := range ws {
				if w.Field != "ignored_parameters" || !strings.HasPrefix(w.Message, tc.want[i]+" is a credential") || !strings.Contains(w.Message, "share_credentialed_responses: true") {
					t.Errorf("warning %d: %+v", i, w)
				}
			}
		})
	}
}
