package cache

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Request headers of cachegate's own, the gateway's equivalents of
// requests-cache's per-request arguments. The gateway removes every
// X-Cachegate-* header before calling the upstream. ExpireAfterHeader and
// ForceRefreshHeader are honoured only when the upstream's policy has
// ClientOverrides or the request carries the admin token in TokenHeader.
const (
	// TokenHeader carries the admin token, which lets a request use the
	// control headers below whatever the upstream's client_overrides says.
	TokenHeader = "X-Cachegate-Token"
	// ExpireAfterHeader sets the expiry of the response to this request,
	// overriding every other rule (requests-cache's per-request
	// expire_after). It takes what ParseExpiry does.
	ExpireAfterHeader = "X-Cachegate-Expire-After"
	// ForceRefreshHeader, set to "true" or "1", fetches anew and overwrites
	// the stored entry (requests-cache's force_refresh).
	ForceRefreshHeader = "X-Cachegate-Force-Refresh"
)

// Use says what a stored entry may be used for.
type Use int

// The uses of a stored entry.
const (
	// UseFresh: answer from the entry.
	UseFresh Use = iota
	// UseStale: the entry is stale but the client accepts it (max-stale).
	UseStale
	// Validate: the entry must be validated with the upstream first (or,
	// without a validator, fetched anew).
	Validate
)

func (u Use) String() string {
	return [...]string{"fresh", "stale-accepted", "validate"}[u]
}

// Judgement is what the rules say about using a stored entry for a request.
type Judgement struct {
	Use Use
	// Fresh reports whether the entry is fresh by its expiry.
	Fresh bool
	// Age is the entry's current age (RFC 9111 section 4.2.3).
	Age time.Duration
	// Staleness is how long ago the entry expired (0 when fresh).
	Staleness time.Duration
	// Reason explains Use in a sentence.
	Reason string
	// StaleIfError reports whether the entry may be served when the
	// upstream fails; StaleWhileRevalidate whether it may be served at once
	// while it is refreshed in the background.
	StaleIfError         bool
	StaleWhileRevalidate bool
}

// HasValidator reports whether e can be revalidated conditionally.
func (e *Entry) HasValidator() bool { return e.ETag != "" || e.LastModified != "" }

// RequestDirectives returns the Cache-Control directives of a request,
// taking Pragma: no-cache as no-cache when there is no Cache-Control
// (RFC 9111 section 5.4).
func RequestDirectives(h http.Header) Directives {
	d := ParseCacheControl(h)
	if d == nil && len(h["Pragma"]) > 0 && strings.Contains(strings.ToLower(get(h, "Pragma")), "no-cache") {
		d = Directives{"no-cache": ""}
	}
	return d
}

// Judge decides how a stored entry may answer a request with header
// reqHeader at now.
func (p *Policy) Judge(e *Entry, reqHeader http.Header, now time.Time) Judgement {
	j := Judgement{Fresh: !e.IsExpired(now), Age: CurrentAge(e, now)}
	if !j.Fresh {
		j.Staleness = now.Sub(e.Expires)
	}
	reqCC := RequestDirectives(reqHeader)
	var respCC Directives
	if p.CacheControl || p.Mode == ModeRFC9111 {
		respCC, _ = p.ResponseCacheControl(e.Header)
	}
	mustRevalidate := respCC.Has("must-revalidate") || (p.Mode == ModeRFC9111 && (respCC.Has("proxy-revalidate") || respCC.Has("s-maxage")))
	// A stale entry is never served on an error or while it is refreshed
	// when the response forbids serving it unvalidated: must-revalidate,
	// and for a shared cache proxy-revalidate and s-maxage (RFC 9111
	// sections 5.2.2.2, 5.2.2.8 and 5.2.2.10), or a no-cache that covers
	// the whole response (5.2.2.4; no-cache="field" names fields only).
	forbidsStale := mustRevalidate || respCC.Has("proxy-revalidate") || respCC.Has("s-maxage") ||
		(respCC.Has("no-cache") && respCC["no-cache"] == "")
	if !forbidsStale && !j.Fresh {
		j.StaleIfError = p.StaleIfError.Allows(j.Staleness) ||
			directiveAllows(respCC, "stale-if-error", j.Staleness) ||
			directiveAllows(reqCC, "stale-if-error", j.Staleness)
		j.StaleWhileRevalidate = !reqCC.Has("no-cache") && (p.StaleWhileRevalidate.Allows(j.Staleness) ||
			directiveAllows(respCC, "stale-while-revalidate", j.Staleness))
	}

	validate := func(why string) Judgement {
		j.Use = Validate
		j.Reason = why
		return j
	}
	switch {
	case reqCC.Has("no-cache"):
		return validate("the request said no-cache: validate before use")
	case respCC.Has("no-cache") && (p.Mode != ModeRFC9111 || respCC["no-cache"] == ""):
		// In rfc9111 mode no-cache="X-Foo" only keeps the fields it names
		// from being reused, and those are not stored (RFC 9111 section
		// 5.2.2.4).
		return validate("the stored response said no-cache: validate on every use")
	case p.AlwaysRevalidate && e.HasValidator():
		return validate("always_revalidate is on")
	}
	if v, ok := reqCC.Seconds("max-age"); ok && j.Age > v {
		return validate(fmt.Sprintf("the entry's age %s is over the request's max-age %s", j.Age.Round(time.Second), v))
	}
	if j.Fresh {
		if v, ok := reqCC.Seconds("min-fresh"); ok && !e.Never() && e.Expires.Sub(now) < v {
			return validate(fmt.Sprintf("the entry is fresh for %s, less than the request's min-fresh %s", e.Expires.Sub(now).Round(time.Second), v))
		}
		j.Use = UseFresh
		// A constant: this is every cache hit, and the expiry is on the
		// entry for whoever wants to show it.
		j.Reason = "fresh"
		return j
	}
	if v, ok := reqCC["max-stale"]; ok && !mustRevalidate {
		limit, _ := reqCC.Seconds("max-stale")
		if v == "" || j.Staleness <= limit {
			j.Use = UseStale
			j.Reason = "stale, but within the request's max-stale"
			return j
		}
	}
	return validate(fmt.Sprintf("stale for %s", j.Staleness.Round(time.Millisecond)))
}

// directiveAllows reports whether a delta-seconds directive such as
// stale-if-error=N (RFC 5861) covers the given staleness.
func directiveAllows(d Directives, name string, staleness time.Duration) bool {
	v, ok := d.Seconds(name)
	return ok && staleness <= v
}
