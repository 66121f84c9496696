package cache

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Request is what the rules need to know of a client request.
type Request struct {
	Method string
	// URL is the normalized upstream URL without its scheme
	// ("api.github.com/repos/x?a=1"), matched by patterns not starting
	// with '/'.
	URL string
	// Path is the path and query below the upstream's base URL, starting
	// with '/', matched by patterns starting with '/'.
	Path string
	// Header is the client's request header.
	Header http.Header
	// ExpireAfter is the client's per-request expiry override, if any.
	ExpireAfter *Expiry
	// MaxAge is the request's Cache-Control: max-age as an expiry, set
	// only when the client may override shared policy (as ExpireAfter).
	MaxAge *Expiry
}

// Response is what the rules need to know of an upstream response.
type Response struct {
	Status int
	Header http.Header
	// RequestTime is when the request was sent, ResponseTime when the
	// response headers arrived (RFC 9111 section 4.2.3).
	RequestTime, ResponseTime time.Time
	// Size is the body size, -1 if not known yet.
	Size int64
}

// Decision says whether a response is stored and until when, and why.
type Decision struct {
	Store bool
	// Expires is the absolute expiry; the zero Time means never.
	Expires time.Time
	// Rule names the setting or header that decided ("urls_expire_after
	// \"/x*\"", "Cache-Control: max-age", "expire_after", ...).
	Rule string
	// Reason is a sentence for operators: why stored with this expiry, or
	// why not stored.
	Reason string
}

func notStored(rule, format string, args ...any) Decision {
	return Decision{Rule: rule, Reason: fmt.Sprintf(format, args...)}
}

// heuristicStatuses are the statuses RFC 9110 section 15.1 defines as
// heuristically cacheable.
var heuristicStatuses = map[int]bool{200: true, 203: true, 204: true, 206: true, 300: true, 301: true, 308: true, 404: true, 405: true, 410: true, 414: true, 501: true}

// understoodStatuses are the final statuses whose caching rules (RFC 9110
// section 15) cachegate implements, for must-understand: the heuristically
// cacheable ones and the others RFC 9110 defines, but not 206 (partial
// content is never stored) and 304.
var understoodStatuses = map[int]bool{
	200: true, 201: true, 202: true, 203: true, 204: true, 205: true,
	300: true, 301: true, 302: true, 303: true, 307: true, 308: true,
	400: true, 401: true, 402: true, 403: true, 404: true, 405: true, 406: true, 407: true, 408: true,
	409: true, 410: true, 411: true, 412: true, 413: true, 414: true, 415: true, 416: true, 417: true,
	421: true, 422: true, 426: true,
	500: true, 501: true, 502: true, 503: true, 504: true, 505: true,
}

// varyStar reports whether any member of the response's Vary is "*": the
// response varies on things outside the request (RFC 9111 section 4.1), so
// no later request can ever match it.
func varyStar(h http.Header) bool {
	for _, line := range h["Vary"] {
		for _, name := range strings.Split(line, ",") {
			if strings.TrimSpace(name) == "*" {
				return true
			}
		}
	}
	return false
}

// namesField reports whether a directive argument such as private's or
// no-cache's ("Set-Cookie, X-Foo") lists the field name.
func namesField(arg, name string) bool {
	for _, f := range strings.Split(arg, ",") {
		if strings.EqualFold(strings.TrimSpace(f), name) {
			return true
		}
	}
	return false
}

// Decide applies the policy to an upstream response: whether to store it
// and when it expires. Size may be -1 when the body has not been read yet;
// the size limit is then checked by the caller.
func (p *Policy) Decide(req Request, resp Response) Decision {
	reqCC := ParseCacheControl(req.Header)
	respCC, field := p.ResponseCacheControl(resp.Header)

	if !p.AllowsMethod(req.Method) {
		return notStored("allowable_methods", "method %s is not in allowable_methods %v", req.Method, p.AllowableMethods)
	}
	if !p.AllowsStatus(resp.Status) {
		if len(p.AllowableCodes) == 0 {
			return notStored("status", "status %d is never stored (partial or not-modified responses)", resp.Status)
		}
		return notStored("allowable_codes", "status %d is not in allowable_codes %v", resp.Status, p.AllowableCodes)
	}
	if reqCC.Has("no-store") {
		return notStored("request Cache-Control: no-store", "the request said Cache-Control: no-store")
	}
	// RFC 9111 section 5.2.2.3: a cache that implements the status code's
	// caching rules ignores no-store when must-understand comes with it.
	mustUnderstood := p.Mode == ModeRFC9111 && respCC.Has("must-understand") && understoodStatuses[resp.Status]
	// no-store is honoured whatever cache_control says: cache_control
	// chooses whose expiry wins, while no-store says the response must not
	// be kept at all, often because it is someone's personal data.
	if respCC.Has("no-store") && !mustUnderstood {
		return notStored(field+": no-store", "the upstream said %s: no-store, which is honoured in every mode", field)
	}
	if varyStar(resp.Header) {
		return notStored("Vary: *", "the response varies on everything (Vary: *), so no request could ever match it")
	}
	mt := MediaType(resp.Header.Get("Content-Type"))
	if ok, why := p.AllowsContentType(mt); !ok {
		return notStored("content_types", "%s", why)
	}
	if resp.Size > p.MaxBodySize {
		return notStored("max_body_size", "the body (%d bytes) is larger than max_body_size (%d bytes); it streams through", resp.Size, p.MaxBodySize)
	}
	var d Decision
	if p.Mode == ModeRFC9111 {
		d = p.decideRFC(req, resp, respCC, field)
	} else {
		d = p.decideRequestsCache(req, resp, respCC, field)
	}
	if d.Store && setsCookie(resp.Header) {
		d.Reason += "; its Set-Cookie went only to the client that caused the fetch and was not stored"
	}
	return d
}

func setsCookie(h http.Header) bool { return HasSetCookie(h) }

// notPrivate is the decision for a response marked Cache-Control: private
// (without field names) in a shared cache.
func notPrivate() Decision {
	return notStored("Cache-Control: private", "the upstream marked the response private (Cache-Control: private), and this upstream is a shared cache; set private_cache: true if its cache serves a single user")
}

// decideRequestsCache applies requests-cache's rules; cc are the
// response's directives from field (Cache-Control or a targeted field).
func (p *Policy) decideRequestsCache(req Request, resp Response, cc Directives, field string) Decision {
	now := resp.ResponseTime
	// The expiry comes from, first match winning, as requests-cache
	// documents it: the response's cache headers (with cache_control), the
	// request's Cache-Control, the per-request expiry header, the
	// urls_expire_after patterns, then expire_after.
	// requests-cache is a private, per-process cache and stores private
	// responses; a gateway shares its cache, so it does not, unless the
	// operator says this upstream's users are one. A qualified
	// private="Field" only keeps the named fields out, and newEntry drops
	// them.
	if cc.Has("private") && cc["private"] == "" && !p.PrivateCache {
		return notPrivate()
	}
	withExpiry := func(e Expiry, rule, why string) Decision {
		if e == DoNotCache {
			return notStored(rule, "%s says do_not_cache", why)
		}
		d := Decision{Store: true, Expires: e.ExpiresAt(now), Rule: rule}
		switch e {
		case NeverExpire:
			d.Reason = why + " says never expire"
		case ExpireImmediately:
			d.Reason = why + " says expire immediately: stored, revalidated or refetched on the next request"
		default:
			if at, ok := e.At(); ok {
				d.Reason = fmt.Sprintf("%s says expire at %s", why, at.Format(time.RFC3339))
			} else {
				d.Reason = fmt.Sprintf("%s gives %s", why, time.Duration(e))
			}
		}
		return d
	}
	if p.CacheControl {
		switch {
		case cc.Has("no-cache"):
			return withExpiry(ExpireImmediately, field+": no-cache", "the upstream's "+field+": no-cache")
		case cc.Has("immutable"):
			return withExpiry(NeverExpire, field+": immutable", "the upstream's "+field+": immutable")
		case cc.Has("max-age"):
			d, _ := cc.Seconds("max-age")
			if cc["max-age"] == "invalid" {
				d = 0
			}
			return withExpiry(Expiry(d), field+": max-age", "the upstream's "+field+": max-age="+cc["max-age"])
		case field == "Cache-Control" && resp.Header.Get("Expires") != "":
			// A targeted field replaces Expires too (RFC 9213 section 2.1).
			exp, ok := ParseHTTPDate(resp.Header.Get("Expires"))
			if !ok || !exp.After(now) {
				return withExpiry(ExpireImmediately, "Expires", "the upstream's Expires header (in the past or invalid)")
			}
			d := Decision{Store: true, Expires: exp, Rule: "Expires"}
			d.Reason = "the upstream's Expires header gives " + exp.UTC().Format(http.TimeFormat)
			return d
		}
	}
	if req.MaxAge != nil {
		return withExpiry(*req.MaxAge, "request Cache-Control: max-age", "the request's Cache-Control: max-age")
	}
	if req.ExpireAfter != nil {
		return withExpiry(*req.ExpireAfter, "request expire-after", "the request's "+ExpireAfterHeader+" header")
	}
	if r, ok := p.MatchURLRule(req); ok {
		return withExpiry(r.Expire, "urls_expire_after", fmt.Sprintf("urls_expire_after pattern %q", r.Pattern))
	}
	return withExpiry(p.ExpireAfter, "expire_after", "expire_after")
}

// MatchURLRule returns the first urls_expire_after rule matching req.
func (p *Policy) MatchURLRule(req Request) (URLRule, bool) {
	for _, r := range p.URLsExpireAfter {
		if r.Matches(req) {
			return r, true
		}
	}
	return URLRule{}, false
}

// matchURLPattern matches like requests-cache: the pattern matches the
// whole URL, or a prefix of it when the pattern has no wildcard at its end
// ("api.github.com/users" matches "api.github.com/users/x").
func matchURLPattern(pattern, target string) bool {
	if Glob(pattern, target) {
		return true
	}
	return Glob(strings.TrimSuffix(pattern, "*")+"*", target)
}

func (p *Policy) decideRFC(req Request, resp Response, cc Directives, field string) Decision {
	if cc.Has("must-understand") && !understoodStatuses[resp.Status] {
		// RFC 9111 section 3: with must-understand, only a cache that
		// implements the status code's caching rules may store it.
		return notStored("Cache-Control: must-understand", "the response says must-understand and status %d is not one whose caching rules cachegate implements", resp.Status)
	}
	if setsCookie(resp.Header) && !p.PrivateCache {
		if !namesField(cc["private"], "Set-Cookie") && !namesField(cc["no-cache"], "Set-Cookie") {
			// RFC 9111 section 3.1 requires a stored response to keep
			// every field, Set-Cookie included, and section 7.3 leaves
			// keeping cookies out of shared caches to the origin. Rather
			// than hand one client's cookie to the next, a response that
			// sets one is not stored (as Varnish and nginx do by default),
			// unless private="Set-Cookie" or no-cache="Set-Cookie" lets
			// the cache store it without the field.
			return notStored("Set-Cookie", "the response sets a cookie; a shared cache would replay it to other clients")
		}
	}
	if cc.Has("private") && cc["private"] == "" && !p.PrivateCache {
		return notPrivate()
	}
	// RFC 9111 section 3.5 binds shared caches only.
	if !p.PrivateCache && req.Header.Get("Authorization") != "" && !cc.Has("public") && !cc.Has("must-revalidate") && !cc.Has("s-maxage") {
		return notStored("Authorization", "the request carries Authorization and the response does not allow shared caching (public, s-maxage or must-revalidate)")
	}
	lifetime, explicit, rule := freshnessLifetime(resp.Status, resp.Header, cc, field, resp.ResponseTime)
	hasValidator := resp.Header.Get("ETag") != "" || resp.Header.Get("Last-Modified") != ""
	if !explicit && !cc.Has("public") && !heuristicStatuses[resp.Status] {
		return notStored("freshness", "status %d is not heuristically cacheable and the response has no explicit freshness (max-age, s-maxage, Expires)", resp.Status)
	}
	if lifetime <= 0 && !hasValidator {
		return notStored("freshness", "the response has no freshness information and no validator (ETag, Last-Modified), so it could never be reused")
	}
	age := InitialAge(resp.Header, resp.RequestTime, resp.ResponseTime)
	d := Decision{Store: true, Expires: resp.ResponseTime.Add(lifetime - age), Rule: rule}
	d.Reason = fmt.Sprintf("%s gives a freshness lifetime of %s", rule, lifetime)
	if age > 0 {
		d.Reason += fmt.Sprintf(", less an initial age of %s", age)
	}
	if !d.Expires.After(resp.ResponseTime) {
		d.Expires = resp.ResponseTime
		d.Reason += "; stored stale, revalidated on every use"
	}
	return d
}

// freshnessLifetime computes a response's freshness lifetime for a shared
// cache (RFC 9111 section 4.2.1): s-maxage, then max-age, then Expires minus
// Date, then a heuristic of 10% of the time since Last-Modified (capped at a
// day) for heuristically cacheable statuses or public responses. explicit
// reports whether the lifetime came from the response's own freshness
// information.
// cc are the directives of field: a targeted field (RFC 9213) replaces
// Cache-Control and Expires.
func freshnessLifetime(status int, h http.Header, cc Directives, field string, responseTime time.Time) (lifetime time.Duration, explicit bool, rule string) {
	if v, ok := cc["s-maxage"]; ok {
		d, _ := cc.Seconds("s-maxage")
		if v == "invalid" {
			d = 0
		}
		return d, true, field + ": s-maxage"
	}
	if v, ok := cc["max-age"]; ok {
		d, _ := cc.Seconds("max-age")
		if v == "invalid" {
			d = 0
		}
		return d, true, field + ": max-age"
	}
	if exp := h.Values("Expires"); len(exp) > 0 && field == "Cache-Control" {
		t, ok := ParseHTTPDate(exp[0])
		if !ok {
			return 0, true, "Expires (invalid: already expired)"
		}
		date, ok := ParseHTTPDate(h.Get("Date"))
		if !ok {
			date = responseTime
		}
		d := t.Sub(date)
		if d < 0 {
			d = 0
		}
		// RFC 9111 section 1.2.2: a lifetime past 2^31 seconds is taken
		// as 2^31; it also keeps the expiry within what backends store.
		d = min(d, maxDeltaSeconds)
		return d, true, "Expires"
	}
	if lm, ok := ParseHTTPDate(h.Get("Last-Modified")); ok && (heuristicStatuses[status] || cc.Has("public")) {
		date, ok := ParseHTTPDate(h.Get("Date"))
		if !ok {
			date = responseTime
		}
		d := date.Sub(lm) / 10
		if d > 24*time.Hour {
			d = 24 * time.Hour
		}
		if d < 0 {
			d = 0
		}
		return d, false, "heuristic freshness (10% of the time since Last-Modified)"
	}
	return 0, false, "no freshness information"
}

// InitialAge is the corrected initial age of a response (RFC 9111 section
// 4.2.3): how old it already was when it arrived.
func InitialAge(h http.Header, requestTime, responseTime time.Time) time.Duration {
	var apparent time.Duration
	if date, ok := ParseHTTPDate(get(h, "Date")); ok {
		apparent = responseTime.Sub(date)
		if apparent < 0 {
			apparent = 0
		}
	}
	ageValue := parseAge(get(h, "Age"))
	delay := responseTime.Sub(requestTime)
	if delay < 0 {
		delay = 0
	}
	corrected := ageValue + delay
	if apparent > corrected {
		return apparent
	}
	return corrected
}

// maxDeltaSeconds caps delta-seconds values (RFC 9111 section 1.2.2).
const maxDeltaSeconds = (1 << 31) * time.Second

// parseAge reads an Age field value (RFC 9111 section 5.1). Only the first
// member of a list counts ("7200, 0" is 7200); anything but digits (a
// sign, a fraction, letters) makes the field invalid, and it is ignored.
func parseAge(v string) time.Duration {
	v, _, _ = strings.Cut(v, ",")
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > 1<<31 {
		return maxDeltaSeconds
	}
	return time.Duration(n) * time.Second
}

// CurrentAge is the age of a stored entry at now (RFC 9111 section 4.2.3).
func CurrentAge(e *Entry, now time.Time) time.Duration {
	resident := now.Sub(e.Created)
	if resident < 0 {
		resident = 0
	}
	return InitialAge(e.Header, e.RequestTime, e.Created) + resident
}

// ExpiryRule is one step of the chain that gives a stored response its
// expiry, as Decide tries them. ReasonPrefix begins every Reason the step
// writes, so Filter.Reason with it selects the entries the step stored.
type ExpiryRule struct {
	// Rule names the setting or header ("urls_expire_after",
	// "expire_after", "Cache-Control: max-age").
	Rule string `json:"rule"`
	// Pattern is a urls_expire_after pattern; Expire is the configured
	// expiry ("" when the response's headers give it).
	Pattern string `json:"pattern,omitempty"`
	Expire  string `json:"expire,omitempty"`
	// Note says when the step applies, for operators.
	Note         string `json:"note,omitempty"`
	ReasonPrefix string `json:"reason_prefix"`
	// URL is set for a urls_expire_after step, to match requests.
	URL *URLRule `json:"-"`
}

// Matches reports whether r applies to req (the first matching
// urls_expire_after pattern wins; see MatchURLRule).
func (r URLRule) Matches(req Request) bool {
	if re := r.regexp(); re != nil || strings.HasPrefix(r.Pattern, RegexpPrefix) {
		// Searched, not anchored (as Python's re.search): in the URL
		// without its scheme and in the path below the upstream's base.
		return re != nil && (re.MatchString(req.URL) || re.MatchString(req.Path))
	}
	target := req.URL
	if strings.HasPrefix(r.Pattern, "/") {
		target = req.Path
	}
	return matchURLPattern(r.Pattern, target)
}

// ExpiryRules returns the chain of rules that decide a stored response's
// expiry, in the order Decide tries them: the first that applies wins.
// It lists only the rules that can decide in p's mode (rfc9111 mode goes
// by the response's freshness information alone).
func (p *Policy) ExpiryRules() []ExpiryRule {
	if p.Mode == ModeRFC9111 {
		var rules []ExpiryRule
		for _, f := range p.TargetedFields() {
			rules = append(rules,
				ExpiryRule{Rule: f + ": s-maxage", Note: "the response's " + f + " (RFC 9213), in place of Cache-Control and Expires", ReasonPrefix: f + ": s-maxage "},
				ExpiryRule{Rule: f + ": max-age", Note: "the response's " + f + " (RFC 9213)", ReasonPrefix: f + ": max-age "})
		}
		return append(rules, []ExpiryRule{
			{Rule: "Cache-Control: s-maxage", Note: "the response's s-maxage", ReasonPrefix: "Cache-Control: s-maxage "},
			{Rule: "Cache-Control: max-age", Note: "the response's max-age", ReasonPrefix: "Cache-Control: max-age "},
			{Rule: "Expires", Note: "the response's Expires less its Date", ReasonPrefix: "Expires"},
			{Rule: "heuristic freshness", Note: "10% of the time since Last-Modified, at most a day", ReasonPrefix: "heuristic freshness "},
			{Rule: "no freshness information", Note: "stored stale, for its validator: revalidated on every use", ReasonPrefix: "no freshness information "},
		}...)
	}
	override := "when the client may override (client_overrides, or the admin token)"
	if p.ClientOverrides {
		override = "any client may send it (client_overrides is on)"
	}
	var rules []ExpiryRule
	if p.CacheControl {
		rules = append(rules, ExpiryRule{Rule: "cache_control", Note: "the upstream's " + p.targetedNames() + "Cache-Control (no-cache, immutable, max-age) or Expires",
			ReasonPrefix: "the upstream's "})
	}
	rules = append(rules,
		ExpiryRule{Rule: "request Cache-Control: max-age", Note: override, ReasonPrefix: "the request's Cache-Control: max-age "},
		ExpiryRule{Rule: "request " + ExpireAfterHeader, Note: override, ReasonPrefix: "the request's " + ExpireAfterHeader + " header "})
	for i := range p.URLsExpireAfter {
		r := &p.URLsExpireAfter[i]
		rules = append(rules, ExpiryRule{Rule: "urls_expire_after", Pattern: r.Pattern, Expire: r.Expire.String(),
			ReasonPrefix: fmt.Sprintf("urls_expire_after pattern %q ", r.Pattern), URL: r})
	}
	return append(rules, ExpiryRule{Rule: "expire_after", Expire: p.ExpireAfter.String(), Note: "when nothing above applies",
		ReasonPrefix: "expire_after "})
}
