package cache

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Directives are the parsed Cache-Control directives of a request or a
// response (RFC 9111 section 5.2). Names are lower case; a directive without
// an argument maps to "".
type Directives map[string]string

// ParseCacheControl parses every Cache-Control field line of h. Unknown
// directives are kept (they are ignored by the rules, as the RFC asks).
// Arguments may be quoted.
func ParseCacheControl(h http.Header) Directives {
	lines := h.Values("Cache-Control")
	if len(lines) == 0 {
		return nil
	}
	d := Directives{}
	for _, line := range lines {
		for len(line) > 0 {
			var part string
			part, line = nextDirective(line)
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			name, arg, _ := strings.Cut(part, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			arg = strings.TrimSpace(arg)
			if len(arg) >= 2 && arg[0] == '"' && arg[len(arg)-1] == '"' {
				arg = arg[1 : len(arg)-1]
			}
			if _, dup := d[name]; dup && (name == "max-age" || name == "s-maxage") {
				// RFC 9111 4.2.1: duplicated freshness directives make the
				// response stale; an invalid value does that below.
				d[name] = "invalid"
				continue
			}
			d[name] = arg
		}
	}
	return d
}

// nextDirective splits off the next comma-separated directive, honouring
// quoted strings (no-cache="Set-Cookie, X-Foo" is one directive).
func nextDirective(s string) (string, string) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			inQuote = !inQuote
		case '\\':
			if inQuote {
				i++
			}
		case ',':
			if !inQuote {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}

// Has reports whether the directive is present.
func (d Directives) Has(name string) bool {
	_, ok := d[name]
	return ok
}

// Seconds returns a delta-seconds directive's value. ok is false when the
// directive is absent. An argument that is not a non-negative integer gives
// 0 with ok true (RFC 9111 4.2.1: treat as stale); a huge value is capped
// at 2^31 seconds (section 1.2.2).
func (d Directives) Seconds(name string) (time.Duration, bool) {
	v, ok := d[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		if ne, isNum := err.(*strconv.NumError); isNum && ne.Err == strconv.ErrRange && v != "" && v[0] != '-' {
			return (1 << 31) * time.Second, true
		}
		return 0, true
	}
	if n < 0 {
		return 0, true
	}
	if n > 1<<31 {
		n = 1 << 31
	}
	return time.Duration(n) * time.Second, true
}

// ParseHTTPDate parses an HTTP date in any of the three formats RFC 9110
// allows. ok is false for anything else (an invalid Expires means "already
// expired", which callers handle).
func ParseHTTPDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	t, err := http.ParseTime(s)
	return t, err == nil
}
