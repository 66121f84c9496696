package cache

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strings"
	"time"
)

// Freshness selects entries by whether they are stale.
type Freshness string

// Freshness values; the empty value matches every entry. Stale is a part
// of Expired: an expired entry with a validator (an ETag or a
// Last-Modified), which a conditional request can refresh with a 304
// instead of a full refetch. Whether an upstream's stale_if_error or
// stale_while_revalidate would also serve it depends on that upstream's
// rules and the moment, which no backend query can judge.
const (
	AnyFreshness Freshness = ""
	Fresh        Freshness = "fresh"
	Expired      Freshness = "expired"
	Stale        Freshness = "stale"
)

// Filter selects entries. Zero fields match everything; set fields must all
// match. The empty Filter matches every entry.
type Filter struct {
	// Keys, when not empty, restricts to these keys.
	Keys []string
	// Credentials selects the entries stored from a request that carried
	// a credential (one of CredentialHeaders, in any case, names a field
	// of RequestHeader, where the gateway records it as REDACTED): what a
	// privacy audit looks for.
	Credentials bool
	// SetCookie selects the entries whose stored response carries
	// Set-Cookie (or Set-Cookie2), in any case: a cookie in a shared
	// entry goes to every client.
	SetCookie bool
	// VaryOn selects the entries whose stored response's Vary names this
	// header, compared without case: the audit's link for a Vary on a
	// header the upstream ignores.
	VaryOn string
	// BaseKey restricts to the variants of one resource.
	BaseKey string
	// Upstream is an exact upstream name.
	Upstream string
	// URL matches the stored URL: as a glob when it holds '*' or '?'
	// ('*' matches any run of characters, '/' included, as fnmatch does),
	// otherwise as a case-sensitive substring.
	URL string
	// Method is an exact request method (upper case).
	Method string
	// Status is an exact response status.
	Status int
	// ContentType matches the media type exactly, or as a prefix when it
	// ends in '/' or '*' ("image/" and "image/*" match every image).
	ContentType string
	// Freshness selects fresh, expired or stale (expired with a
	// validator) entries, judged at Now (or the current time when Now is
	// zero).
	Freshness Freshness
	Now       time.Time
	// MinSize and MaxSize bound the body size in bytes; 0 means unbounded.
	MinSize, MaxSize int64
	// CreatedAfter / CreatedBefore and ExpiresAfter / ExpiresBefore bound
	// those times: After is inclusive, Before exclusive. An entry that never
	// expires is after every time.
	CreatedAfter, CreatedBefore time.Time
	ExpiresAfter, ExpiresBefore time.Time
	// Reason keeps the entries whose Reason starts with it (case-sensitive,
	// no wildcards): the reasons the policy writes begin with the rule that
	// set the expiry ("urls_expire_after pattern \"/x*\"", "expire_after"),
	// so a prefix selects what one rule stored.
	Reason string
}

// SelectsAll reports whether f sets nothing that narrows it, so that it
// matches every entry: what a destructive operation must not do by
// accident ({"min_size": "0"} names a field but bounds nothing). Every
// field but Now (when, not what) narrows when set, so a field added later
// counts without being listed here.
func (f Filter) SelectsAll() bool {
	f.Now = time.Time{}
	if len(f.Keys) == 0 {
		f.Keys = nil
	}
	return reflect.ValueOf(f).IsZero()
}

// IsGlob reports whether the URL filter is a glob pattern.
func (f Filter) IsGlob() bool { return strings.ContainsAny(f.URL, "*?") }

// ContentTypePrefix returns the content-type filter as a prefix and whether
// it is one (see Filter.ContentType).
func (f Filter) ContentTypePrefix() (string, bool) {
	ct := f.ContentType
	if strings.HasSuffix(ct, "*") {
		return strings.TrimSuffix(ct, "*"), true
	}
	return ct, strings.HasSuffix(ct, "/")
}

// At returns the time freshness is judged at.
func (f Filter) At() time.Time {
	if f.Now.IsZero() {
		return time.Now()
	}
	return f.Now
}

// Match reports whether e passes f. Backends that cannot push a filter
// down to their store use it; the others must agree with it (the
// conformance suite checks).
func (f Filter) Match(e *Entry) bool {
	if len(f.Keys) > 0 && !contains(f.Keys, e.Key) {
		return false
	}
	if f.Credentials && !HasCredential(e.RequestHeader) {
		return false
	}
	if f.SetCookie && !HasSetCookie(e.Header) {
		return false
	}
	if f.VaryOn != "" && !VariesOn(e.Header, f.VaryOn) {
		return false
	}
	if f.BaseKey != "" && e.BaseKey != f.BaseKey {
		return false
	}
	if f.Upstream != "" && e.Upstream != f.Upstream {
		return false
	}
	if f.URL != "" {
		if f.IsGlob() {
			if !Glob(f.URL, e.URL) {
				return false
			}
		} else if !strings.Contains(e.URL, f.URL) {
			return false
		}
	}
	if f.Method != "" && e.Method != f.Method {
		return false
	}
	if f.Status != 0 && e.Status != f.Status {
		return false
	}
	if f.ContentType != "" {
		if p, ok := f.ContentTypePrefix(); ok {
			if !strings.HasPrefix(e.ContentType, p) {
				return false
			}
		} else if e.ContentType != f.ContentType {
			return false
		}
	}
	switch f.Freshness {
	case Fresh:
		if e.IsExpired(f.At()) {
			return false
		}
	case Expired:
		if !e.IsExpired(f.At()) {
			return false
		}
	case Stale:
		if !e.IsExpired(f.At()) || !e.HasValidator() {
			return false
		}
	}
	if f.MinSize > 0 && e.Size < f.MinSize {
		return false
	}
	if f.MaxSize > 0 && e.Size > f.MaxSize {
		return false
	}
	if !f.CreatedAfter.IsZero() && e.Created.Before(f.CreatedAfter) {
		return false
	}
	if !f.CreatedBefore.IsZero() && !e.Created.Before(f.CreatedBefore) {
		return false
	}
	if f.Reason != "" && !strings.HasPrefix(e.Reason, f.Reason) {
		return false
	}
	exp := ExpiresOrdinal(e.Expires)
	if !f.ExpiresAfter.IsZero() && exp < f.ExpiresAfter.UnixNano() {
		return false
	}
	if !f.ExpiresBefore.IsZero() && exp >= f.ExpiresBefore.UnixNano() {
		return false
	}
	return true
}

// HasCredential reports whether h names one of CredentialHeaders.
func HasCredential(h map[string][]string) bool {
	for name := range h {
		if IsCredential(name) {
			return true
		}
	}
	return false
}

// SetCookieHeaders are the response fields that set a cookie.
var SetCookieHeaders = []string{"Set-Cookie", "Set-Cookie2"}

// HasSetCookie reports whether h names one of SetCookieHeaders, in any
// case (a backend may hand back names as stored).
func HasSetCookie(h map[string][]string) bool {
	for name := range h {
		for _, c := range SetCookieHeaders {
			if strings.EqualFold(name, c) {
				return true
			}
		}
	}
	return false
}

// VaryNames returns the header names h's Vary fields list (the field
// name in any case, as a backend may hand it back), canonical, in order,
// "*" left out.
func VaryNames(h map[string][]string) []string {
	var names []string
	for field, values := range h {
		if !strings.EqualFold(field, "Vary") {
			continue
		}
		for _, v := range values {
			for _, name := range strings.Split(v, ",") {
				if name = strings.TrimSpace(name); name != "" && name != "*" {
					names = append(names, http.CanonicalHeaderKey(name))
				}
			}
		}
	}
	return names
}

// VariesOn reports whether h's Vary lists name, without case.
func VariesOn(h map[string][]string, name string) bool {
	for _, n := range VaryNames(h) {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ExpiresOrdinal maps an expiry to a sortable integer: Unix nanoseconds, with
// "never" (the zero Time) after every real time.
func ExpiresOrdinal(t time.Time) int64 {
	if t.IsZero() {
		return math.MaxInt64
	}
	return t.UnixNano()
}

// Glob reports whether s matches pattern, where '*' matches any run of
// characters ('/' included) and '?' any single character, as Python's
// fnmatch does for requests-cache's urls_expire_after. Other characters
// match themselves.
func Glob(pattern, s string) bool {
	// Iterative matcher with single-star backtracking: linear in practice,
	// never exponential.
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			starP, starI = p, i
			p++
		case starP >= 0:
			starI++
			p, i = starP+1, starI
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// SortField names what a listing is ordered by.
type SortField string

// The sort fields. Ties are always broken by key, so the order is total
// and cursors are stable.
const (
	SortCreated SortField = "created"
	SortExpires SortField = "expires"
	SortSize    SortField = "size"
	SortURL     SortField = "url"
	SortHits    SortField = "hits"
)

// SortFields lists the accepted sort fields, for error messages.
var SortFields = []SortField{SortCreated, SortExpires, SortSize, SortURL, SortHits}

// Sort orders a listing. The zero Sort is newest first (created, descending).
type Sort struct {
	Field SortField
	Desc  bool
}

// Normalize fills in the default order and validates the field.
func (s Sort) Normalize() (Sort, error) {
	if s.Field == "" {
		return Sort{Field: SortCreated, Desc: true}, nil
	}
	for _, f := range SortFields {
		if s.Field == f {
			return s, nil
		}
	}
	return s, fmt.Errorf("unknown sort field %q (accepted: created, expires, size, url, hits): %w", s.Field, ErrInvalid)
}

// SortValue is the value of e for field: an int64 for created (Unix nanos),
// expires (ExpiresOrdinal), size and hits; a string for url.
func SortValue(e *Entry, field SortField) (n int64, s string) {
	switch field {
	case SortExpires:
		return ExpiresOrdinal(e.Expires), ""
	case SortSize:
		return e.Size, ""
	case SortURL:
		return 0, e.URL
	case SortHits:
		return e.Hits, ""
	default:
		return e.Created.UnixNano(), ""
	}
}

// Less reports whether a comes before b in order s (ties broken by key in
// the same direction).
func (s Sort) Less(a, b *Entry) bool {
	an, as := SortValue(a, s.Field)
	bn, bs := SortValue(b, s.Field)
	c := 0
	switch {
	case s.Field == SortURL && as != bs:
		c = strings.Compare(as, bs)
	case an < bn:
		c = -1
	case an > bn:
		c = 1
	default:
		c = strings.Compare(a.Key, b.Key)
	}
	if s.Desc {
		return c > 0
	}
	return c < 0
}

// Cursor is the decoded position of a page boundary: the sort value and key
// of the last entry of the previous page.
type Cursor struct {
	Field SortField `json:"f"`
	Desc  bool      `json:"d,omitempty"`
	N     int64     `json:"n,omitempty"`
	S     string    `json:"s,omitempty"`
	Key   string    `json:"k"`
}

// CursorAfter returns the cursor that continues a listing after e.
func CursorAfter(e *Entry, s Sort) string {
	n, str := SortValue(e, s.Field)
	b, _ := json.Marshal(Cursor{Field: s.Field, Desc: s.Desc, N: n, S: str, Key: e.Key})
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseCursor decodes a cursor and checks that it belongs to sort s.
func ParseCursor(cursor string, s Sort) (Cursor, error) {
	var c Cursor
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.Key == "" {
		return c, fmt.Errorf("malformed cursor: pass the 'next' value of the previous page unchanged: %w", ErrInvalid)
	}
	if c.Field != s.Field || c.Desc != s.Desc {
		return c, fmt.Errorf("cursor belongs to another sort order (%s): %w", c.Field, ErrInvalid)
	}
	return c, nil
}

// After reports whether e comes strictly after cursor c in its order.
func (c Cursor) After(e *Entry) bool {
	n, str := SortValue(e, c.Field)
	cmp := 0
	switch {
	case c.Field == SortURL && str != c.S:
		cmp = strings.Compare(str, c.S)
	case c.Field != SortURL && n != c.N:
		if n < c.N {
			cmp = -1
		} else {
			cmp = 1
		}
	default:
		cmp = strings.Compare(e.Key, c.Key)
	}
	if c.Desc {
		return cmp < 0
	}
	return cmp > 0
}
