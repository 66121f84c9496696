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
	return parseDirectives(h["Cache-Control"])
}

// DefaultTargetedCacheControl are the targeted fields a policy reads when
// it names none: CDN-Cache-Control speaks to every CDN-like shared cache.
var DefaultTargetedCacheControl = []string{"CDN-Cache-Control"}

// ResponseCacheControl returns the directives that govern caching h for
// the gateway, and the field they came from: the first of the policy's
// targeted fields (RFC 9213 section 2.1) that h carries with a directive,
// else Cache-Control. When a targeted field wins, the response's
// Cache-Control and Expires are ignored for caching. Targeted fields are
// read only where the response's cache headers are (cache_control, or
// rfc9111 mode): otherwise Cache-Control alone is, for its no-store.
func (p *Policy) ResponseCacheControl(h http.Header) (Directives, string) {
	if !p.CacheControl && p.Mode != ModeRFC9111 {
		return ParseCacheControl(h), "Cache-Control"
	}
	for _, name := range p.TargetedFields() {
		if d, ok := parseTargeted(h.Values(name)); ok && len(d) > 0 {
			return d, name
		}
	}
	return ParseCacheControl(h), "Cache-Control"
}

// TargetedFields returns the targeted fields the policy reads, the
// default when it names none.
func (p *Policy) TargetedFields() []string {
	if p.TargetedCacheControl == nil {
		return DefaultTargetedCacheControl
	}
	return p.TargetedCacheControl
}

// targetedNames lists the targeted fields for a sentence ("CDN-Cache-Control, ").
func (p *Policy) targetedNames() string {
	var s string
	for _, f := range p.TargetedFields() {
		s += f + ", "
	}
	return s
}

func parseDirectives(lines []string) Directives {
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
	if t, ok := parseIMFFixdate(s); ok {
		return t, true
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	if t, ok := parseIMFFixdate(s); ok {
		return t, true
	}
	// Only the two obsolete formats remain (RFC 9110 section 5.6.7).
	// http.ParseTime is not used: its IMF-fixdate layout also takes a
	// one-digit hour or doubled spaces, which RFC 9111 section 5.3 says
	// make Expires invalid (so the response is stale).
	for _, layout := range []string{time.RFC850, time.ANSIC} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// month reads a month's three-letter name, in any case.
func month(s string) (time.Month, bool) {
	if len(s) != 3 {
		return 0, false
	}
	// Letters only (setting bit 5 lower-cases a letter and moves every
	// other byte outside a-z), then lower-cased.
	for _, c := range []byte(s) {
		if c|0x20 < 'a' || c|0x20 > 'z' {
			return 0, false
		}
	}
	switch string([]byte{s[0] | 0x20, s[1] | 0x20, s[2] | 0x20}) {
	case "jan":
		return time.January, true
	case "feb":
		return time.February, true
	case "mar":
		return time.March, true
	case "apr":
		return time.April, true
	case "may":
		return time.May, true
	case "jun":
		return time.June, true
	case "jul":
		return time.July, true
	case "aug":
		return time.August, true
	case "sep":
		return time.September, true
	case "oct":
		return time.October, true
	case "nov":
		return time.November, true
	case "dec":
		return time.December, true
	}
	return 0, false
}

// parseIMFFixdate parses the one date format servers send today, "Sun, 06
// Nov 1994 08:49:37 GMT", without time.Parse's generality: every cache hit
// reads the stored Date to compute Age, so this is on the hot path (it
// took 230 ns with time.Date and a loop over month names, 40 ns now).
func parseIMFFixdate(s string) (time.Time, bool) {
	if len(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
		s[19] != ':' || s[22] != ':' || s[25:] != " GMT" {
		return time.Time{}, false
	}
	num := func(b string) (int, bool) {
		n := 0
		for i := 0; i < len(b); i++ {
			if b[i] < '0' || b[i] > '9' {
				return 0, false
			}
			n = n*10 + int(b[i]-'0')
		}
		return n, true
	}
	day, ok1 := num(s[5:7])
	year, ok2 := num(s[12:16])
	hh, ok3 := num(s[17:19])
	mm, ok4 := num(s[20:22])
	ss, ok5 := num(s[23:25])
	mon, ok6 := month(s[8:11])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || day < 1 || day > daysIn(mon, year) || hh > 23 || mm > 59 || ss > 60 {
		return time.Time{}, false
	}
	secs := daysSinceEpoch(year, mon, day)*86400 + int64(hh*3600+mm*60+ss)
	return time.Unix(secs, 0).UTC(), true
}

// daysIn is the number of days in month m of year y (proleptic
// Gregorian, as time.Date).
func daysIn(m time.Month, y int) int {
	switch m {
	case time.February:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// daysSinceEpoch is the day number of a date from 1970-01-01, for years
// 0 to 9999 (H. Hinnant's days_from_civil).
func daysSinceEpoch(y int, m time.Month, d int) int64 {
	if m <= time.February {
		y--
	}
	era := (y + 400) / 400 // y >= -1: era 0 covers years -1 to 398 once shifted
	yoe := y + 400 - era*400
	mp := (int(m) + 9) % 12 // March is 0
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era-1)*146097 + int64(doe) - 719468
}

// get returns the first value of a header field given by its canonical
// name. http.Header.Get canonicalizes the name on every call, which shows
// on the cache-hit path; every name here is a canonical constant.
func get(h http.Header, canonical string) string {
	if v := h[canonical]; len(v) > 0 {
		return v[0]
	}
	return ""
}
