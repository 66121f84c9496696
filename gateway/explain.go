package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// Explanation says what the gateway would do with a request, without
// sending it.
type Explanation struct {
	Upstream string    `json:"upstream"`
	Backend  string    `json:"backend"`
	Mode     string    `json:"mode"`
	Method   string    `json:"method"`
	URL      string    `json:"url"` // redacted
	Key      string    `json:"key"`
	KeyParts []KeyPart `json:"key_parts"`
	// Cacheable is false when the method passes through.
	Cacheable    bool   `json:"cacheable"`
	NotCacheable string `json:"not_cacheable_reason,omitempty"`
	// Store, Rule, Reason and Expires are the policy's decision for a
	// response to this request: for the cached response's headers when
	// something is cached, otherwise for a 200 without caching headers
	// (Assumed says which).
	Assumed string     `json:"assumed"`
	Store   bool       `json:"would_store"`
	Rule    string     `json:"rule"`
	Reason  string     `json:"reason"`
	Expires *time.Time `json:"expires,omitempty"`
	Never   bool       `json:"never_expires,omitempty"`
	// Chain is the expiry rules in the order they are tried, the one
	// that decided (if one did) marked Won.
	Chain []ChainStep `json:"rule_chain"`
	// Cached describes the stored entry, if any, and what a request would
	// get from it now.
	Cached *CachedExplanation `json:"cached,omitempty"`
	// Expressions says what the upstream's key and filter expressions
	// gave for this request; absent when it has none.
	Expressions []ExpressionResult `json:"expressions,omitempty"`
	// LastNotStored says why the last response fetched for this key was
	// not stored, when the gateway remembers one (recent keys only).
	LastNotStored *Refusal `json:"last_not_stored,omitempty"`
}

// The states of a step of the rule chain.
const (
	StepWon        = "won"          // this rule gave the expiry (or refused it: do_not_cache)
	StepNoMatch    = "no_match"     // tried, and it does not apply to this request or response
	StepAlsoMatch  = "also_matches" // a urls_expire_after pattern that matches, after the one that won
	StepNotReached = "not_reached"  // an earlier rule, or a refusal to store, decided first
)

// ChainStep is one rule of an Explanation's chain.
type ChainStep struct {
	Rule    string `json:"rule"`
	Pattern string `json:"pattern,omitempty"`
	Expire  string `json:"expire,omitempty"`
	Note    string `json:"note,omitempty"`
	State   string `json:"state"`
	Won     bool   `json:"won"`
}

// ruleChain lays out p's expiry rules for a request whose decision was
// dec: the step whose reasons start dec.Reason won.
func ruleChain(p *cache.Policy, req cache.Request, dec cache.Decision) []ChainStep {
	rules := p.ExpiryRules()
	won := -1
	for i, r := range rules {
		if strings.HasPrefix(dec.Reason, r.ReasonPrefix) {
			won = i
			break
		}
	}
	steps := make([]ChainStep, len(rules))
	for i, r := range rules {
		st := ChainStep{Rule: r.Rule, Pattern: r.Pattern, Expire: r.Expire, Note: r.Note}
		switch {
		case i == won:
			st.State, st.Won = StepWon, true
		case won >= 0 && i > won && r.URL != nil && r.URL.Matches(req):
			st.State = StepAlsoMatch
		case won >= 0 && i > won, won < 0 && !dec.Store:
			st.State = StepNotReached
		default:
			st.State = StepNoMatch
		}
		steps[i] = st
	}
	return steps
}

// ExpressionResult is what one of an upstream's expressions gave.
type ExpressionResult struct {
	// Field is the config field: "key" or "filter".
	Field      string `json:"field"`
	Expression string `json:"expression"`
	// Result is the key's string or the filter's bool; absent on error.
	Result any `json:"result,omitempty"`
	// Error is why evaluation failed, and then what the gateway does.
	Error string `json:"error,omitempty"`
	// Input says which response a filter was given.
	Input string `json:"input,omitempty"`
}

// KeyPart is one ingredient of the cache key.
type KeyPart struct {
	Part  string `json:"part"`
	Value string `json:"value"`
}

// CachedExplanation describes the entry a request would find.
type CachedExplanation struct {
	Key      string     `json:"key"`
	Fresh    bool       `json:"fresh"`
	Expires  *time.Time `json:"expires,omitempty"`
	AgeSec   int64      `json:"age_seconds"`
	Hits     int64      `json:"hits"`
	Stored   string     `json:"stored_reason"`
	Answer   string     `json:"answer"` // HIT, STALE, REVALIDATE, REFETCH
	Why      string     `json:"why"`
	Variants bool       `json:"varies,omitempty"`
	Created  time.Time  `json:"created"`
	LastHit  *time.Time `json:"last_hit,omitempty"`
}

// Explain tells what the gateway would do with method on rawURL (a path and
// query below the upstream, a /fetch/<name>/ path, or an absolute URL on the
// upstream's host) with the given request headers: the key and its parts,
// the expiry rule that would win and why, whether the response would be
// stored, and what is cached now.
func (g *Gateway) Explain(ctx context.Context, upstreamName, rawURL, method string, header http.Header) (Explanation, error) {
	up, err := g.upstream(upstreamName)
	if err != nil {
		return Explanation{}, err
	}
	if method == "" {
		method = http.MethodGet
	}
	method = strings.ToUpper(method)
	if header == nil {
		header = http.Header{}
	}
	rest, query, err := up.relative(rawURL)
	if err != nil {
		return Explanation{}, err
	}
	target, err := up.target(rest, query)
	if err != nil {
		return Explanation{}, err
	}
	p := &up.Policy
	cacheMethod := method
	if method == http.MethodHead && p.AllowsMethod(http.MethodGet) {
		cacheMethod = http.MethodGet
	}
	kr, err := newKeyedRequest(up, cacheMethod, target, header, nil)
	if err != nil {
		return Explanation{}, err
	}
	x := Explanation{
		Upstream: up.Name, Backend: up.BackendName, Mode: string(p.Mode), Method: method,
		URL: kr.storedURL, Key: kr.base, Cacheable: p.AllowsMethod(cacheMethod),
	}
	keyURL, _, _ := normalizeURL(target, p)
	x.KeyParts = append(x.KeyParts, KeyPart{"upstream", up.Name}, KeyPart{"method", cacheMethod})
	if up.KeyExpr != nil {
		r := ExpressionResult{Field: "key", Expression: up.KeyExpr.String()}
		if kr.keyErr != nil {
			r.Error = kr.keyErr.Error() + " (the default key, from the url, is used)"
		} else {
			r.Result = kr.keyExpr
		}
		x.Expressions = append(x.Expressions, r)
	}
	if up.KeyExpr != nil && kr.keyErr == nil {
		x.KeyParts = append(x.KeyParts, KeyPart{"key expression (in place of the url)", kr.keyExpr})
	} else {
		x.KeyParts = append(x.KeyParts, KeyPart{"url", keyURL})
	}
	var left, kept []string
	for _, name := range p.IgnoredParameters {
		if isCredential(name) && p.KeysCredential(name) {
			kept = append(kept, name)
		} else {
			left = append(left, name)
		}
	}
	if len(left) > 0 {
		x.KeyParts = append(x.KeyParts, KeyPart{"ignored parameters (left out)", strings.Join(left, ", ")})
	}
	if len(kept) > 0 {
		x.KeyParts = append(x.KeyParts, KeyPart{"ignored credentials (kept in the key, hashed; share_credentialed_responses is off)", strings.Join(kept, ", ")})
	}
	hparts, _ := keyHeaders(header, p)
	for i := 0; i+1 < len(hparts); i += 2 {
		v := hparts[i+1]
		name := hparts[i]
		if strings.HasPrefix(name, "credential:") || isCredential(name) {
			// A credential in match_headers counts too; its value is no
			// more the admin API's to show than the store's.
			v = "(hashed, never stored)"
		}
		x.KeyParts = append(x.KeyParts, KeyPart{"header " + strings.TrimPrefix(name, "credential:"), v})
	}
	if !x.Cacheable {
		x.NotCacheable = fmt.Sprintf("method %s is not in allowable_methods %v: it passes through", method, p.AllowableMethods)
	}
	if cache.RequestDirectives(header).Has("no-store") {
		x.Cacheable = false
		x.NotCacheable = "the request says Cache-Control: no-store: it bypasses the cache"
	}

	now := g.now()
	entry, err := g.lookup(ctx, up, kr)
	if err != nil {
		return x, err
	}
	respHeader := http.Header{}
	status := http.StatusOK
	x.Assumed = "a 200 response without caching headers (nothing is cached to look at)"
	if entry != nil {
		respHeader, status = entry.Header, entry.Status
		x.Assumed = "the headers of the cached response"
	}
	dec := p.Decide(kr.rules, cache.Response{Status: status, Header: respHeader, RequestTime: now, ResponseTime: now, Size: -1})
	if up.FilterExpr != nil {
		var size int64
		if entry != nil {
			size = entry.Size
		}
		r := ExpressionResult{Field: "filter", Expression: up.FilterExpr.String(), Input: x.Assumed}
		in := exprInput(up, kr.method, kr.target, kr.storedURL, kr.header)
		if ok, err := up.FilterExpr.Eval(&in, status, respHeader, size); err != nil {
			r.Error = err.Error() + " (the response is not stored)"
		} else {
			r.Result = ok
		}
		x.Expressions = append(x.Expressions, r)
		dec = up.filter(kr, dec, status, respHeader, size)
	}
	if ref, ok := up.refused.get(kr.base); ok {
		x.LastNotStored = &ref
		if entry == nil {
			// What the upstream really answered beats a guess.
			x.Assumed = fmt.Sprintf("the last response fetched for this key (status %d at %s), which was not stored", ref.Status, ref.At.UTC().Format(time.RFC3339))
			dec = cache.Decision{Rule: ref.Rule, Reason: ref.Reason}
		}
	}
	x.Store, x.Rule, x.Reason = dec.Store, dec.Rule, dec.Reason
	x.Chain = ruleChain(p, kr.rules, dec)
	if dec.Store {
		if dec.Expires.IsZero() {
			x.Never = true
		} else {
			t := dec.Expires
			x.Expires = &t
		}
	}
	if entry != nil {
		j := p.Judge(entry, header, now)
		c := &CachedExplanation{
			Key: entry.Key, Fresh: j.Fresh, AgeSec: int64(j.Age / time.Second), Hits: entry.Hits,
			Stored: entry.Reason, Why: j.Reason, Variants: len(varyNames(entry.Header)) > 0, Created: entry.Created,
		}
		if !entry.Never() {
			t := entry.Expires
			c.Expires = &t
		}
		if !entry.LastHit.IsZero() {
			t := entry.LastHit
			c.LastHit = &t
		}
		switch {
		case j.Use == cache.UseFresh:
			c.Answer = Hit
		case j.Use == cache.UseStale || j.StaleWhileRevalidate:
			c.Answer = Stale
		case entry.HasValidator():
			c.Answer = "REVALIDATE"
		default:
			c.Answer = "REFETCH"
		}
		x.Cached = c
	}
	return x, nil
}

// ErrNoUpstreamMatches is wrapped by ResolveURL when no configured
// upstream matches a URL; its message lists the configured ones.
var ErrNoUpstreamMatches = errors.New("no upstream matches this URL")

// ResolveURL finds the upstream a pasted URL belongs to, for Explain: a
// /fetch/NAME/ path, on its own or on the gateway's address
// (http://gateway:8080/fetch/NAME/...), or an absolute URL below an
// upstream's base URL (the longest base wins). It returns the upstream's
// name and the URL in a form Explain takes.
func (g *Gateway) ResolveURL(raw string) (name, rawURL string, err error) {
	raw = strings.TrimSpace(raw)
	pathQuery := raw
	var abs *url.URL
	if strings.HasPrefix(raw, "http://") || strings.HasPrefix(raw, "https://") {
		if abs, err = url.Parse(raw); err != nil {
			return "", "", fmt.Errorf("url %q does not parse: %w", raw, err)
		}
		pathQuery = abs.EscapedPath()
		if abs.RawQuery != "" {
			pathQuery += "?" + abs.RawQuery
		}
	}
	set := g.upstreams.Load()
	if n, _, ok := splitFetchPath(pathQuery); ok {
		if _, known := set.byName[n]; known {
			return n, pathQuery, nil
		}
	}
	if abs != nil {
		best, bestLen := "", -1
		for _, n := range set.names {
			u := set.byName[n].URL
			if !strings.EqualFold(u.Scheme, abs.Scheme) || !strings.EqualFold(hostWithoutDefaultPort(u), hostWithoutDefaultPort(abs)) {
				continue
			}
			base := strings.TrimSuffix(u.EscapedPath(), "/")
			p := abs.EscapedPath()
			if (p == base || strings.HasPrefix(p, base+"/") || base == "") && len(base) > bestLen {
				best, bestLen = n, len(base)
			}
		}
		if best != "" {
			return best, raw, nil
		}
	}
	return "", "", fmt.Errorf("%w: configured ones are %s", ErrNoUpstreamMatches, g.describeUpstreams())
}

// describeUpstreams lists the upstreams as "name (base URL)", for
// messages that should say what would have matched.
func (g *Gateway) describeUpstreams() string {
	set := g.upstreams.Load()
	if len(set.names) == 0 {
		return "none (add one under upstreams: in the config file)"
	}
	parts := make([]string, len(set.names))
	for i, n := range set.names {
		parts[i] = fmt.Sprintf("%s (%s, or /fetch/%s/...)", n, set.byName[n].URL, n)
	}
	return strings.Join(parts, ", ")
}

// relative turns what an operator typed into the escaped path below the
// upstream and a raw query.
func (u *upstream) relative(raw string) (rest, query string, err error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", "", errors.New("url is empty: give a path below the upstream, like /repos/golang/go")
	}
	if strings.HasPrefix(raw, "http://") || strings.HasPrefix(raw, "https://") {
		abs, err := url.Parse(raw)
		if err != nil {
			return "", "", fmt.Errorf("url %q does not parse: %w", raw, err)
		}
		if !strings.EqualFold(abs.Host, u.URL.Host) {
			return "", "", fmt.Errorf("url %q is not on upstream %q (%s)", raw, u.Name, u.URL.Host)
		}
		p := strings.TrimPrefix(abs.EscapedPath(), strings.TrimSuffix(u.URL.EscapedPath(), "/"))
		return strings.TrimPrefix(p, "/"), abs.RawQuery, nil
	}
	path, query, _ := strings.Cut(raw, "?")
	if p, ok := strings.CutPrefix(path, "/fetch/"+u.Name+"/"); ok {
		path = p
	}
	return strings.TrimPrefix(path, "/"), query, nil
}
