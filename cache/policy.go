package cache

import (
	"golang.org/x/net/http/httpguts"
	"regexp"

	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Mode selects the caching rules of an upstream.
type Mode string

// The modes.
const (
	// ModeRequestsCache follows the Python library requests-cache: a
	// response without any expiry information lives as long as ExpireAfter
	// says.
	ModeRequestsCache Mode = "requests-cache"
	// ModeRFC9111 is a strict shared cache by RFC 9111.
	ModeRFC9111 Mode = "rfc9111"
)

// URLRule gives an expiry to URLs matching a glob pattern (see Glob). A
// pattern starting with '/' matches the path and query below the upstream;
// any other pattern matches the URL without its scheme, as requests-cache's
// urls_expire_after does.
type URLRule struct {
	// Pattern is a glob (see Matches), or after RegexpPrefix a regular
	// expression (Go's RE2 syntax).
	Pattern string
	Expire  Expiry
	re      *regexp.Regexp // Pattern's regular expression, compiled by Validate
}

// RegexpPrefix marks a urls_expire_after pattern as a regular expression
// rather than a glob, as requests-cache accepts a compiled re.Pattern.
const RegexpPrefix = "re:"

// regexp returns r's compiled regular expression, nil for a glob or one
// that does not compile (Validate refuses those).
func (r *URLRule) regexp() *regexp.Regexp {
	expr, ok := strings.CutPrefix(r.Pattern, RegexpPrefix)
	if !ok {
		return nil
	}
	if r.re == nil {
		r.re, _ = regexp.Compile(expr)
	}
	return r.re
}

// Staleness is "off", "on without limit" or "on up to Max" for
// stale_if_error and stale_while_revalidate, which requests-cache accepts as
// a bool or a duration.
type Staleness struct {
	On  bool
	Max time.Duration // 0 with On: no limit
}

// Allows reports whether an entry stale by the given amount may be used.
func (s Staleness) Allows(staleFor time.Duration) bool {
	return s.On && (s.Max == 0 || staleFor <= s.Max)
}

// String renders s the way UnmarshalText reads it.
func (s Staleness) String() string {
	switch {
	case !s.On:
		return "false"
	case s.Max == 0:
		return "true"
	}
	return s.Max.String()
}

// UnmarshalText reads "true", "false", a duration ("10m", "1d") or seconds.
func (s *Staleness) UnmarshalText(b []byte) error {
	v := strings.ToLower(strings.TrimSpace(string(b)))
	switch v {
	case "true", "yes", "on":
		*s = Staleness{On: true}
		return nil
	case "false", "no", "off", "":
		*s = Staleness{}
		return nil
	}
	e, err := ParseExpiry(v)
	if err != nil || e < 0 {
		return fmt.Errorf("bad staleness %q: want true, false or a maximum staleness like 10m or 1d", v)
	}
	*s = Staleness{On: true, Max: time.Duration(e)}
	return nil
}

// MarshalText renders s.
func (s Staleness) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// KeyParts says which parts of a request shape its cache key, like
// requests-cache's key_fn or Varnish's vcl_hash. The method and the URL
// without its query always count.
type KeyParts struct {
	IgnoreQuery   bool // the query string does not count
	IgnoreBody    bool // the request body does not count
	IgnoreHeaders bool // match_headers do not count (Vary still does)
}

// Policy holds the caching rules of one upstream.
type Policy struct {
	Mode Mode
	// ExpireAfter applies when nothing more specific does.
	ExpireAfter Expiry
	// URLsExpireAfter is checked in order; the first match wins.
	URLsExpireAfter []URLRule
	// CacheControl honours Cache-Control and Expires from the upstream (and
	// from the client request). Always on in ModeRFC9111.
	CacheControl bool
	// TargetedCacheControl are the targeted cache-control fields (RFC
	// 9213) that speak to this gateway, in order of precedence: the first
	// one a response carries with directives replaces its Cache-Control
	// and Expires for the gateway's decisions (clients still get every
	// field). nil means DefaultTargetedCacheControl; an empty list turns
	// them off. Read where Cache-Control is read (CacheControl, or
	// ModeRFC9111).
	TargetedCacheControl []string
	// EntryHeaders sends what requests-cache's CachedResponse tells a
	// Python user, on every answer from a stored entry: X-Cachegate-Key,
	// X-Cachegate-Created and X-Cachegate-Expires (RFC 3339, or never).
	EntryHeaders bool
	// AllowableCodes are the statuses that may be stored.
	AllowableCodes []int
	// AllowableMethods are the request methods whose responses may be
	// stored. Others pass through.
	AllowableMethods []string
	// IgnoredParameters are query parameters, form fields, JSON body keys
	// and request headers left out of the key and redacted in storage.
	// Names match case-insensitively everywhere: a secret sent as API_KEY
	// must not escape redaction that was configured as api_key. The
	// credential headers (see CredentialHeaders) stay in the key, hashed,
	// even when listed, unless ShareCredentialedResponses says otherwise.
	IgnoredParameters []string
	// ShareCredentialedResponses lets a credential header listed in
	// IgnoredParameters leave the key, so that clients holding different
	// credentials share one entry. requests-cache's default
	// ignored_parameters lists Authorization; copied into a shared gateway
	// that list would hand one user's response to the next, so it takes
	// this explicit opt-in.
	ShareCredentialedResponses bool
	// PrivateCache says the upstream's cache serves a single user, so
	// responses marked Cache-Control: private may be stored. Off, they are
	// not: cachegate is a shared cache by default.
	PrivateCache bool
	// ClientOverrides lets any client use the per-request control headers
	// (ExpireAfterHeader, ForceRefreshHeader). Off, only requests carrying
	// the admin token in TokenHeader may: an anonymous client could
	// otherwise pin an error page forever or force upstream traffic.
	ClientOverrides bool
	// MatchHeaders are request headers that take part in the key;
	// MatchAllHeaders makes every request header count.
	MatchHeaders    []string
	MatchAllHeaders bool
	// StaleIfError serves a stale entry when the upstream fails.
	StaleIfError Staleness
	// StaleWhileRevalidate serves a stale entry at once and refreshes it in
	// the background.
	StaleWhileRevalidate Staleness
	// AlwaysRevalidate revalidates entries with a validator on every
	// request, even fresh ones.
	AlwaysRevalidate bool
	// MaxBodySize is the largest body stored, in bytes; larger ones stream
	// through. 0 means DefaultMaxBodySize.
	MaxBodySize int64
	// ContentTypes, when not empty, are the only media types stored
	// (entries ending in '/' or '*' are prefixes); ExcludeContentTypes are
	// never stored.
	ContentTypes        []string
	ExcludeContentTypes []string
	// Key shapes the cache key.
	Key KeyParts
}

// DefaultMaxBodySize is the largest body stored when MaxBodySize is unset.
const DefaultMaxBodySize = 64 << 20

// DefaultPolicy returns requests-cache's defaults with the given default
// expiry. Allowable codes and methods are left for Validate to fill in,
// because their default depends on the mode: [200] in requests-cache mode,
// every status the RFC allows in rfc9111 mode.
func DefaultPolicy(expireAfter Expiry) Policy {
	return Policy{Mode: ModeRequestsCache, ExpireAfter: expireAfter}
}

// Validate checks p and fills in defaults. Its errors name the setting.
func (p *Policy) Validate() error {
	switch p.Mode {
	case "":
		p.Mode = ModeRequestsCache
	case ModeRequestsCache, ModeRFC9111:
	default:
		return fmt.Errorf("mode: unknown mode %q (accepted: requests-cache, rfc9111)", p.Mode)
	}
	for _, name := range p.TargetedCacheControl {
		if !httpguts.ValidHeaderFieldName(name) {
			return fmt.Errorf("targeted_cache_control: %q is not a header name", name)
		}
	}
	if len(p.AllowableCodes) == 0 && p.Mode == ModeRequestsCache {
		// In rfc9111 mode an empty list means "every final status the RFC
		// lets a cache store" (see AllowsStatus).
		p.AllowableCodes = []int{http.StatusOK}
	}
	for _, c := range p.AllowableCodes {
		if c < 100 || c > 599 {
			return fmt.Errorf("allowable_codes: %d is not an HTTP status (100-599)", c)
		}
	}
	if len(p.AllowableMethods) == 0 {
		p.AllowableMethods = []string{http.MethodGet, http.MethodHead}
	}
	for i, m := range p.AllowableMethods {
		p.AllowableMethods[i] = strings.ToUpper(m)
		if m == "" || strings.ContainsAny(m, " \t/") {
			return fmt.Errorf("allowable_methods: %q is not an HTTP method", m)
		}
	}
	for i, h := range p.MatchHeaders {
		p.MatchHeaders[i] = http.CanonicalHeaderKey(h)
	}
	for i := range p.URLsExpireAfter {
		r := &p.URLsExpireAfter[i]
		if r.Pattern == "" || r.Pattern == RegexpPrefix {
			return fmt.Errorf("urls_expire_after: empty pattern")
		}
		if expr, ok := strings.CutPrefix(r.Pattern, RegexpPrefix); ok {
			re, err := regexp.Compile(expr)
			if err != nil {
				return fmt.Errorf("urls_expire_after: pattern %q is not a regular expression: %v", r.Pattern, err)
			}
			r.re = re
		}
	}
	if p.MaxBodySize < 0 {
		return fmt.Errorf("max_body_size: must not be negative")
	}
	if p.MaxBodySize == 0 {
		p.MaxBodySize = DefaultMaxBodySize
	}
	if p.Mode == ModeRFC9111 {
		p.CacheControl = true
	}
	return nil
}

// AllowsMethod reports whether responses to method may be stored.
func (p *Policy) AllowsMethod(method string) bool {
	for _, m := range p.AllowableMethods {
		if m == method {
			return true
		}
	}
	return false
}

// AllowsStatus reports whether a response with status may be stored.
// In rfc9111 mode without allowable_codes, every final status but 206
// (partial content is not stored) and 304 may be.
func (p *Policy) AllowsStatus(status int) bool {
	if len(p.AllowableCodes) == 0 && p.Mode == ModeRFC9111 {
		return status >= 200 && status != http.StatusPartialContent && status != http.StatusNotModified
	}
	for _, c := range p.AllowableCodes {
		if c == status {
			return true
		}
	}
	return false
}

// AllowsContentType reports whether a body of the given media type may be
// stored, and if not, which setting refused it.
func (p *Policy) AllowsContentType(mediaType string) (bool, string) {
	for _, x := range p.ExcludeContentTypes {
		if matchMediaType(x, mediaType) {
			return false, "exclude_content_types matches " + strconv.Quote(x)
		}
	}
	if len(p.ContentTypes) == 0 {
		return true, ""
	}
	for _, x := range p.ContentTypes {
		if matchMediaType(x, mediaType) {
			return true, ""
		}
	}
	return false, "content type " + strconv.Quote(mediaType) + " is not in content_types"
}

func matchMediaType(pattern, mediaType string) bool {
	pattern = strings.ToLower(pattern)
	if strings.HasSuffix(pattern, "*") {
		return strings.HasPrefix(mediaType, strings.TrimSuffix(pattern, "*"))
	}
	if strings.HasSuffix(pattern, "/") {
		return strings.HasPrefix(mediaType, pattern)
	}
	return mediaType == pattern
}

// IsIgnored reports whether name is an ignored parameter. The match is
// case-insensitive (requests-cache's is not): a parameter spelled API_KEY
// carries the same secret as api_key, and must be redacted like it.
func (p *Policy) IsIgnored(name string) bool {
	for _, x := range p.IgnoredParameters {
		if strings.EqualFold(x, name) {
			return true
		}
	}
	return false
}

// CredentialHeaders are the request headers that make a response belong to
// whoever sent them. They are part of the cache key (hashed) and never
// stored in the clear.
var CredentialHeaders = []string{"Authorization", "Cookie", "Proxy-Authorization"}

// IsCredential reports whether a header name is one of CredentialHeaders.
func IsCredential(name string) bool {
	for _, c := range CredentialHeaders {
		if strings.EqualFold(c, name) {
			return true
		}
	}
	return false
}

// KeysCredential reports whether the credential header name takes part in
// the key. It always does, unless it is an ignored parameter and the
// policy opted in to sharing credentialed responses.
func (p *Policy) KeysCredential(name string) bool {
	return !p.ShareCredentialedResponses || !p.IsIgnored(name)
}

// Warning is something legal but probably unintended in a policy, for the
// operator's log. Field is the setting's name in the config file.
type Warning struct {
	Field   string
	Message string
}

// Warnings lists what an operator should know about p: a credential
// header in ignored_parameters does not do what the list says (it stays in
// the key) unless share_credentialed_responses opts in, which silences the
// warning.
func (p *Policy) Warnings() []Warning {
	if p.ShareCredentialedResponses {
		return nil
	}
	var ws []Warning
	for _, x := range p.IgnoredParameters {
		if IsCredential(x) {
			ws = append(ws, Warning{Field: "ignored_parameters", Message: fmt.Sprintf(
				"%s is a credential: it is redacted in storage but stays in the cache key (hashed), so users with different credentials never share a response; set share_credentialed_responses: true to drop it from the key", x)})
		}
	}
	return ws
}
