package gateway

import (
	"net/http"
	"sort"
	"strings"

	"github.com/cachegate/cachegate/cache"
)

// varyNames returns the header names listed in a response's Vary, canonical
// and sorted.
func varyNames(h http.Header) []string {
	var names []string
	for _, line := range h["Vary"] {
		for _, n := range strings.Split(line, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, http.CanonicalHeaderKey(n))
			}
		}
	}
	sort.Strings(names)
	return names
}

// varyValue is a request header's value as Vary compares it: every field
// line joined, white space around commas removed (RFC 9111 section 4.1).
func varyValue(h http.Header, name string) string {
	if name == "Accept-Encoding" && first(h, name) != Redacted {
		// Only the codings the gateway serves count: "gzip, deflate, br"
		// and "br, gzip" select one variant.
		return normalizedAcceptEncoding(h)
	}
	vals := h.Values(name)
	if len(vals) == 0 {
		return "\x00absent"
	}
	parts := make([]string, 0, len(vals))
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			parts = append(parts, strings.TrimSpace(p))
		}
	}
	return strings.Join(parts, ",")
}

// varyMatches reports whether the request header agrees with the stored
// request header on every name the stored response's Vary lists.
//
// A redacted credential cannot be compared, and need not be: the entry
// was found by a key that holds the request's credential (hashed), or the
// operator chose share_credentialed_responses, which leaves it out as
// requests-cache leaves ignored headers out of Vary. Without this,
// responses that say Vary: Cookie or Vary: Authorization would never be
// hits. Other redacted values (ignored headers) never match.
func varyMatches(e *cache.Entry, reqHeader http.Header) bool {
	for _, name := range varyNames(e.Header) {
		if name == "*" {
			return false
		}
		stored := varyValue(e.RequestHeader, name)
		if stored == Redacted && isCredential(name) {
			continue
		}
		if stored == Redacted || stored != varyValue(reqHeader, name) {
			return false
		}
	}
	return true
}

// variantKey is the key of the variant of base selected by the request's
// values of the Vary header names.
func variantKey(base string, names []string, reqHeader http.Header) string {
	parts := []string{base, "vary"}
	for _, n := range names {
		parts = append(parts, n, varyValue(reqHeader, n))
	}
	return cache.MakeKey(parts...)
}
