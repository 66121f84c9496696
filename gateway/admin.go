package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// ErrNotFound is returned by the admin operations for a key that is not
// stored.
var ErrNotFound = errors.New("entry not found")

// ErrUnknownUpstream is wrapped by admin operations on an upstream that is
// not configured (an entry imported from elsewhere, say).
var ErrUnknownUpstream = errUnknownUpstream

// The outcomes of a revalidation.
const (
	OutcomeNotModified = "not_modified" // the upstream confirmed the entry; its expiry was extended
	OutcomeUpdated     = "updated"      // the upstream answered anew; the entry was replaced
	OutcomeGone        = "gone"         // the upstream answers 404 or 410; the entry was removed
	OutcomeError       = "error"        // the upstream failed or refused the request; the entry was kept
	OutcomeSkipped     = "skipped"      // the stored request cannot be sent again as it was; nothing was sent, the entry was kept
)

// Revalidation reports what a revalidation did.
type Revalidation struct {
	Key     string     `json:"key"`
	Outcome string     `json:"outcome"`
	Status  int        `json:"upstream_status,omitempty"`
	Expires *time.Time `json:"expires,omitempty"` // nil: never, or not stored
	Stored  bool       `json:"stored"`
	// Reason says why the new expiry, why the entry is no longer stored,
	// or why it was skipped.
	Reason  string   `json:"reason,omitempty"`
	Changes *Changes `json:"changes,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// Changes describes how an updated response differs from the stored one.
type Changes struct {
	StatusBefore int            `json:"status_before"`
	StatusAfter  int            `json:"status_after"`
	Headers      []HeaderChange `json:"headers,omitempty"`
	BodyChanged  bool           `json:"body_changed"`
	SizeBefore   int64          `json:"size_before"`
	SizeAfter    int64          `json:"size_after"`
	// BodyDiff is a unified line diff for text and JSON bodies (JSON is
	// indented first, so the diff follows its structure).
	BodyDiff string `json:"body_diff,omitempty"`
}

// HeaderChange is one response header that was added, removed or changed.
type HeaderChange struct {
	Name   string `json:"name"`
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
}

// Revalidate asks the upstream whether the entry stored under key in b is
// still current, sending the stored request again (its body and headers,
// what was redacted filled from the upstream's RevalidateHeaders) with a
// conditional request when the entry has validators, and updates b
// accordingly.
//
// Only an answer about the entry changes it: 304 refreshes its expiry,
// 404 and 410 remove it, another answer the policy stores (or that forbids
// storing a response of the same status) replaces it. An entry whose
// request cannot be sent again as it was is skipped (OutcomeSkipped) and
// nothing is sent. A network error, a body cut off, 401, 403, 407, 429,
// 5xx, or another answer that says nothing about the entry is an
// OutcomeError that leaves it as it was. These are reported in the
// result, not as errors; errors are for a missing entry (ErrNotFound), an
// entry of an unknown upstream or of another host, or a failing backend.
func (g *Gateway) Revalidate(ctx context.Context, b cache.Backend, key string) (Revalidation, error) {
	res := Revalidation{Key: key}
	e, ok, err := b.Get(ctx, key)
	if err != nil {
		return res, err
	}
	if !ok {
		return res, ErrNotFound
	}
	up, err := g.upstream(e.Upstream)
	if err != nil {
		return res, err
	}
	rp, skip, err := up.replayOf(e)
	if err != nil {
		return res, err
	}
	if skip != "" {
		res.Outcome, res.Reason = OutcomeSkipped, skip
		return res, nil
	}
	kr, err := newKeyedRequest(up, e.Method, rp.target, rp.header, rp.body)
	if err != nil {
		return res, err
	}
	if kr.base != e.BaseKey {
		res.Outcome, res.Reason = OutcomeSkipped, rp.mismatch(e, up.Name)
		return res, nil
	}
	var body io.Reader = http.NoBody
	if len(rp.body) > 0 {
		body = bytes.NewReader(rp.body)
	}
	req, err := http.NewRequestWithContext(ctx, e.Method, rp.target.String(), body)
	if err != nil {
		return res, err
	}
	req.Header = rp.header.Clone()
	if e.ETag != "" {
		req.Header.Set("If-None-Match", e.ETag)
	}
	if e.LastModified != "" {
		req.Header.Set("If-Modified-Since", e.LastModified)
	}
	reqTime := g.now()
	resp, err := up.client.Do(req)
	if err != nil {
		res.Outcome, res.Error = OutcomeError, upstreamError(up.Name, unwrapURLError(err)).Error()+"; the entry was kept"
		return res, nil
	}
	defer resp.Body.Close()
	respTime := g.now()
	res.Status = resp.StatusCode
	removeHopByHop(resp.Header)
	rewriteLocation(resp.Header, up.URL, up.Name, rp.target)

	switch {
	case resp.StatusCode == http.StatusNotModified:
		return g.confirmed(ctx, b, up, kr, e, resp.Header, reqTime, respTime, res)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		if _, err := b.Delete(ctx, key); err != nil {
			return res, err
		}
		res.Outcome = OutcomeGone
		return res, nil
	case replayFailed(resp.StatusCode, e.Status):
		res.Outcome = OutcomeError
		res.Error = fmt.Sprintf("upstream %q answered %d to the replayed request; the entry was kept", up.Name, resp.StatusCode)
		return res, nil
	}
	respBody, tooBig, err := readUpTo(resp.Body, up.Policy.MaxBodySize)
	if err != nil {
		res.Outcome, res.Error = OutcomeError, upstreamError(up.Name, fmt.Errorf("reading the response body: %w", err)).Error()+"; the entry was kept"
		return res, nil
	}
	dec := up.Policy.Decide(kr.rules, cache.Response{Status: resp.StatusCode, Header: resp.Header, RequestTime: reqTime, ResponseTime: respTime, Size: int64(len(respBody))})
	if tooBig {
		dec = cache.Decision{Rule: "max_body_size", Reason: "the new body is larger than max_body_size"}
	}
	if !dec.Store && resp.StatusCode != e.Status {
		// A redirect to a login page, say: an answer to the replay that
		// the cache would not keep tells nothing about the entry.
		res.Outcome = OutcomeError
		res.Error = fmt.Sprintf("upstream %q answered %d, which would not be stored (%s); the entry was kept", up.Name, resp.StatusCode, dec.Reason)
		return res, nil
	}
	fresh := kr.newEntry(up, resp.StatusCode, resp.Header, respBody, reqTime, respTime, dec)
	fresh.Key, fresh.BaseKey, fresh.Hits, fresh.LastHit = e.Key, e.BaseKey, e.Hits, e.LastHit
	// The replay's headers stand for the original request's: keep what
	// was stored of it, not the filled-in secrets.
	fresh.RequestHeader, fresh.RequestBody = e.RequestHeader, e.RequestBody
	res.Outcome, res.Reason = OutcomeUpdated, dec.Reason
	res.Changes = diffEntries(e, fresh, tooBig)
	if dec.Store {
		if err := b.Put(ctx, fresh); err != nil {
			return res, err
		}
		res.Stored = true
		res.Expires = expiresPtr(fresh, true)
	} else if _, err := b.Delete(ctx, key); err != nil {
		return res, err
	}
	return res, nil
}

// confirmed applies a 304 to the entry in b: the new headers merged in,
// the expiry computed anew, the body kept. When the new headers forbid
// storing, the entry is removed.
func (g *Gateway) confirmed(ctx context.Context, b cache.Backend, up *upstream, kr *keyedRequest, stale *cache.Entry, h http.Header, reqTime, respTime time.Time, res Revalidation) (Revalidation, error) {
	e := stale.Clone()
	if e.Header == nil {
		e.Header = http.Header{} // imported without headers
	}
	for k, v := range h {
		switch k {
		case "Content-Length", "Content-Encoding", "Content-Range", "Transfer-Encoding", "Set-Cookie", "Set-Cookie2":
			continue
		}
		e.Header[k] = v
	}
	e.RequestTime, e.Created = reqTime, respTime
	dec := up.Policy.Decide(kr.rules, cache.Response{Status: e.Status, Header: e.Header, RequestTime: reqTime, ResponseTime: respTime, Size: e.Size})
	e.Expires, e.Reason = dec.Expires, dec.Reason
	res.Outcome, res.Reason = OutcomeNotModified, dec.Reason
	if !dec.Store {
		if _, err := b.Delete(ctx, stale.Key); err != nil {
			return res, err
		}
		return res, nil
	}
	if err := b.Put(ctx, e); err != nil {
		return res, err
	}
	res.Stored = true
	res.Expires = expiresPtr(e, true)
	return res, nil
}

func expiresPtr(e *cache.Entry, stored bool) *time.Time {
	if !stored || e.Never() {
		return nil
	}
	t := e.Expires
	return &t
}

func hostWithoutDefaultPort(u *url.URL) string {
	h, port, ok := strings.Cut(u.Host, ":")
	if ok && ((u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443")) {
		return h
	}
	return u.Host
}

// ignoredInDiff are headers that change on every response and would only
// hide the changes that matter.
var ignoredInDiff = map[string]bool{"Date": true, "Age": true, "Expires": true, "X-Request-Id": true}

func diffEntries(before, after *cache.Entry, afterTruncated bool) *Changes {
	c := &Changes{StatusBefore: before.Status, StatusAfter: after.Status, SizeBefore: before.Size, SizeAfter: after.Size}
	names := map[string]bool{}
	for k := range before.Header {
		names[k] = true
	}
	for k := range after.Header {
		names[k] = true
	}
	sorted := make([]string, 0, len(names))
	for k := range names {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if ignoredInDiff[k] {
			continue
		}
		b, a := strings.Join(before.Header.Values(k), ", "), strings.Join(after.Header.Values(k), ", ")
		if a != b {
			c.Headers = append(c.Headers, HeaderChange{Name: k, Before: b, After: a})
		}
	}
	c.BodyChanged = afterTruncated || string(before.Body) != string(after.Body)
	if c.BodyChanged && !afterTruncated && isTextual(before.ContentType) && isTextual(after.ContentType) {
		c.BodyDiff = lineDiff(textForDiff(before), textForDiff(after))
	}
	return c
}

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
	x.KeyParts = append(x.KeyParts, KeyPart{"upstream", up.Name}, KeyPart{"method", cacheMethod}, KeyPart{"url", keyURL})
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
	if n, _, ok := splitFetchPath(pathQuery); ok {
		if _, known := g.upstreams[n]; known {
			return n, pathQuery, nil
		}
	}
	if abs != nil {
		best, bestLen := "", -1
		for _, n := range g.names {
			u := g.upstreams[n].URL
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
	if len(g.names) == 0 {
		return "none (add one under upstreams: in the config file)"
	}
	parts := make([]string, len(g.names))
	for i, n := range g.names {
		parts[i] = fmt.Sprintf("%s (%s, or /fetch/%s/...)", n, g.upstreams[n].URL, n)
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

// textForDiff returns a body as text lines for diffing; JSON is indented so
// that the diff follows its structure.
func textForDiff(e *cache.Entry) string {
	if strings.Contains(e.ContentType, "json") {
		if s, ok := indentJSON(e.Body); ok {
			return s
		}
	}
	return string(e.Body)
}

func isTextual(ct string) bool {
	return strings.HasPrefix(ct, "text/") || strings.Contains(ct, "json") || strings.Contains(ct, "xml") ||
		strings.Contains(ct, "javascript") || strings.Contains(ct, "yaml") || ct == "application/x-www-form-urlencoded"
}
