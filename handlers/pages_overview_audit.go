package handlers

import (
	"cmp"
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/views"
)

// secretParams are query parameter names that usually carry secrets; an
// entry whose URL has one with its value in the clear was stored from a
// request whose secret is now on disk (it belongs in
// ignored_parameters, which redacts it and leaves it out of the key).
var secretParams = []string{"token", "key", "sig", "signature", "password", "passwd", "secret", "auth", "session", "credential"}

// auditScan is how many of the newest entries the audit reads: a bounded
// listing (five pages, no bodies) rather than a scan of every entry,
// whatever the backend holds, so an open overview costs the backend the
// same at a thousand entries as at a million. Each finding links to the
// entries page's filter that selects all such entries.
const auditScan = 5 * cache.MaxLimit

// privacyAudit reads the newest auditScan entries for what they should not
// hold: a URL parameter that looks like a secret (secretParams) with its
// value in the clear, a request with credentials, a Set-Cookie kept, a Vary
// on a header the upstream ignores.
func (a *API) privacyAudit(ctx context.Context, b cache.Backend) views.PrivacyAudit {
	var p views.PrivacyAudit
	if err := a.audit(ctx, b, &p); err != nil {
		p.Err = healthMessage(err)
	}
	return p
}

// secretParam returns the secretParams word a query parameter name ends
// with ("api_key" is "key"), "" for none.
func secretParam(name string) string {
	name = strings.ToLower(name)
	for _, w := range secretParams {
		if strings.HasSuffix(name, w) {
			return w
		}
	}
	return ""
}

func (a *API) audit(ctx context.Context, b cache.Backend, p *views.PrivacyAudit) error {
	policies := map[string]*cache.Policy{}
	if a.gw != nil {
		for _, u := range a.gw.Upstreams() {
			policies[u.Name] = &u.Policy
		}
	}
	var creds, cookies int64
	params := map[string]int64{}
	vary := map[varyFinding]int64{}
	q := cache.Query{Sort: cache.Sort{Field: cache.SortCreated, Desc: true}, Limit: cache.MaxLimit}
	for p.Scanned < auditScan {
		page, err := b.List(ctx, q)
		if err != nil {
			return err
		}
		for _, e := range page.Entries {
			p.Scanned++
			if _, raw, ok := strings.Cut(e.URL, "?"); ok {
				seen := map[string]bool{}
				for _, kv := range strings.FieldsFunc(raw, func(r rune) bool { return r == '&' || r == ';' }) {
					k, v, _ := strings.Cut(kv, "=")
					if k, err := url.QueryUnescape(k); err == nil {
						if w := secretParam(k); w != "" && v != "" && v != gateway.Redacted && !seen[w] {
							seen[w] = true
							params[w]++
						}
					}
				}
			}
			if cache.HasCredential(e.RequestHeader) {
				creds++
			}
			if cache.HasSetCookie(e.Header) {
				cookies++
			}
			if pol := policies[e.Upstream]; pol != nil {
				for _, name := range varyIgnored(e.Header, pol) {
					vary[varyFinding{e.Upstream, name}]++
				}
			}
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	t, err := b.Count(ctx, cache.Filter{})
	if err != nil {
		return err
	}
	p.Total = t.Entries
	of := ""
	if p.Scanned < p.Total {
		of = " (of the newest " + views.Count(p.Scanned) + ")"
	}
	for _, w := range secretParams {
		if n := params[w]; n > 0 {
			p.Rows = append(p.Rows, views.PrivacyRow{
				ID: "param-" + w, Label: "URLs with a " + w + " parameter in the clear" + of, Count: n,
				Hint: "Add the parameter to the upstream's ignored_parameters (it is then redacted and left out of the key), then delete these entries.",
			})
		}
	}
	if creds > 0 {
		p.Rows = append(p.Rows, views.PrivacyRow{ID: "credentials", Label: "Stored from requests with credentials" + of, Count: creds,
			Hint: "Shared only with the same credential, as RFC 9111 allows; check the upstream meant them to be cached (Cache-Control: public or s-maxage)."})
	}
	if cookies > 0 {
		p.Rows = append(p.Rows, views.PrivacyRow{ID: "set-cookie", Label: "Responses stored with Set-Cookie" + of, Count: cookies,
			Hint: "A cookie in a shared entry goes to every client: delete these entries."})
	}
	for _, f := range slices.SortedFunc(maps.Keys(vary), varyFinding.compare) {
		p.Rows = append(p.Rows, views.PrivacyRow{
			ID:    "vary:" + f.upstream + ":" + f.header,
			Label: "Vary on " + f.header + ", which " + f.upstream + " ignores" + of, Count: vary[f],
			Hint: "These entries are keyed by a value that is redacted: every client shares one variant. Stop ignoring the header, or accept that.",
		})
	}
	return nil
}

// varyFinding is a Vary on a header its upstream ignores.
type varyFinding struct{ upstream, header string }

func (a varyFinding) compare(b varyFinding) int {
	return cmp.Or(cmp.Compare(a.upstream, b.upstream), cmp.Compare(a.header, b.header))
}

// varyIgnored returns the headers h's Vary names that the policy ignores,
// in canonical form.
func varyIgnored(h http.Header, pol *cache.Policy) []string {
	var out []string
	for _, name := range cache.VaryNames(h) {
		if pol.IsIgnored(name) {
			out = append(out, name)
		}
	}
	return out
}

// privacyQuery is the entries page's filter for a finding, nil when it has
// none.
func privacyQuery(id string) url.Values {
	if name, ok := strings.CutPrefix(id, "param-"); ok {
		return url.Values{"url": {"*" + name + "=*"}}
	}
	if rest, ok := strings.CutPrefix(id, "vary:"); ok {
		// A header name holds no ':'; the last one ends the upstream's.
		if i := strings.LastIndexByte(rest, ':'); i > 0 {
			return url.Values{"upstream": {rest[:i]}, "vary": {rest[i+1:]}}
		}
	}
	switch id {
	case "credentials":
		return url.Values{"credentials": {"true"}}
	case "set-cookie":
		return url.Values{"set_cookie": {"true"}}
	}
	return nil
}
