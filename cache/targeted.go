package cache

import (
	"strings"
)

// parseTargeted parses a targeted cache-control field (RFC 9213): unlike
// Cache-Control it is a Structured Field Dictionary (RFC 8941 section
// 3.2), so keys are lower case, a directive's argument is an Item, and a
// field that does not parse is ignored as a whole (RFC 9213 section 2.1):
// ok is false then, and the cache falls back to the next field or to
// Cache-Control. A directive whose value has the wrong type (max-age="60")
// is dropped, and a Boolean false (no-store=?0) means absent.
func parseTargeted(lines []string) (d Directives, ok bool) {
	if len(lines) == 0 {
		return nil, false
	}
	p := sfParser{s: strings.Trim(strings.Join(lines, ", "), " ")}
	if p.s == "" {
		return nil, false
	}
	d = Directives{}
	for {
		key, ok := p.key()
		if !ok {
			return nil, false
		}
		v := sfItem{kind: sfBoolean, text: "?1"}
		if p.peek() == '=' {
			p.i++
			if v, ok = p.member(); !ok {
				return nil, false
			}
		} else if !p.params() {
			return nil, false
		}
		if arg, keep := targetedArgument(key, v); keep {
			d[key] = arg
		} else {
			// The last value of a key wins in a Dictionary.
			delete(d, key)
		}
		p.ows()
		if p.done() {
			return d, true
		}
		if p.peek() != ',' {
			return nil, false
		}
		p.i++
		p.ows()
		if p.done() {
			return nil, false // a trailing comma
		}
	}
}

// targetedArgument maps a Dictionary value onto a directive argument as
// the rules read it ("" for a bare directive); keep is false for a value
// the directive cannot take.
func targetedArgument(key string, v sfItem) (arg string, keep bool) {
	switch key {
	case "max-age", "s-maxage", "stale-while-revalidate", "stale-if-error":
		return v.text, v.kind == sfInteger
	case "no-cache", "private":
		// A Boolean, or a String listing field names (no-cache="Set-Cookie").
		switch v.kind {
		case sfBoolean:
			return "", v.text == "?1"
		case sfString:
			return v.text, true
		}
		return "", false
	}
	if v.kind == sfBoolean {
		return "", v.text == "?1"
	}
	return v.text, v.kind != sfInnerList
}

type sfKind int

const (
	sfBoolean sfKind = iota
	sfInteger
	sfDecimal
	sfString
	sfToken
	sfBytes
	sfDate
	sfInnerList
)

// sfItem is a parsed bare item: text is an Integer's or a Decimal's digits,
// a String's unescaped content, a Token, or the item as written.
type sfItem struct {
	kind sfKind
	text string
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) done() bool { return p.i >= len(p.s) }

func (p *sfParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}

// ows skips optional white space between Dictionary members.
func (p *sfParser) ows() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *sfParser) sp() {
	for !p.done() && p.s[p.i] == ' ' {
		p.i++
	}
}

func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool   { return isLCAlpha(c | 0x20) }

func (p *sfParser) key() (string, bool) {
	start := p.i
	if c := p.peek(); !isLCAlpha(c) && c != '*' {
		return "", false
	}
	for !p.done() {
		c := p.s[p.i]
		if !isLCAlpha(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' && c != '*' {
			break
		}
		p.i++
	}
	return p.s[start:p.i], true
}

// member parses an Item or an Inner List, with its parameters.
func (p *sfParser) member() (sfItem, bool) {
	if p.peek() != '(' {
		v, ok := p.bareItem()
		return v, ok && p.params()
	}
	start := p.i
	p.i++
	for {
		p.sp()
		if p.peek() == ')' {
			p.i++
			return sfItem{kind: sfInnerList, text: p.s[start:p.i]}, p.params()
		}
		if _, ok := p.bareItem(); !ok || !p.params() {
			return sfItem{}, false
		}
		if c := p.peek(); c != ' ' && c != ')' {
			return sfItem{}, false
		}
	}
}

func (p *sfParser) params() bool {
	for p.peek() == ';' {
		p.i++
		p.sp()
		if _, ok := p.key(); !ok {
			return false
		}
		if p.peek() == '=' {
			p.i++
			if _, ok := p.bareItem(); !ok {
				return false
			}
		}
	}
	return true
}

func (p *sfParser) bareItem() (sfItem, bool) {
	c := p.peek()
	switch {
	case c == '-' || isDigit(c):
		return p.number()
	case c == '"':
		return p.str()
	case c == '*' || isAlpha(c):
		return p.token()
	case c == ':':
		return p.bytes()
	case c == '?':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1') {
			p.i += 2
			return sfItem{kind: sfBoolean, text: p.s[p.i-2 : p.i]}, true
		}
		return sfItem{}, false
	case c == '@': // a Date (RFC 9651)
		p.i++
		v, ok := p.number()
		return sfItem{kind: sfDate, text: "@" + v.text}, ok && v.kind == sfInteger
	}
	return sfItem{}, false
}

func (p *sfParser) number() (sfItem, bool) {
	start := p.i
	if p.peek() == '-' {
		p.i++
	}
	digits, dot := 0, -1
	for !p.done() {
		c := p.s[p.i]
		if c == '.' && dot < 0 && digits > 0 {
			dot = digits
		} else if !isDigit(c) {
			break
		} else {
			digits++
		}
		p.i++
	}
	text := p.s[start:p.i]
	switch {
	case digits == 0:
		return sfItem{}, false
	case dot < 0:
		return sfItem{kind: sfInteger, text: text}, digits <= 15
	default:
		frac := digits - dot
		return sfItem{kind: sfDecimal, text: text}, dot <= 12 && frac >= 1 && frac <= 3
	}
}

func (p *sfParser) str() (sfItem, bool) {
	p.i++ // the opening quote
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if p.done() || (p.s[p.i] != '"' && p.s[p.i] != '\\') {
				return sfItem{}, false
			}
			b.WriteByte(p.s[p.i])
			p.i++
		case c == '"':
			return sfItem{kind: sfString, text: b.String()}, true
		case c < 0x20 || c > 0x7e:
			return sfItem{}, false
		default:
			b.WriteByte(c)
		}
	}
	return sfItem{}, false
}

func (p *sfParser) token() (sfItem, bool) {
	start := p.i
	p.i++
	for !p.done() && (isTchar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/') {
		p.i++
	}
	return sfItem{kind: sfToken, text: p.s[start:p.i]}, true
}

func isTchar(c byte) bool {
	return isAlpha(c) || isDigit(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *sfParser) bytes() (sfItem, bool) {
	start := p.i
	p.i++
	for !p.done() && p.s[p.i] != ':' {
		c := p.s[p.i]
		if !isAlpha(c) && !isDigit(c) && c != '+' && c != '/' && c != '=' {
			return sfItem{}, false
		}
		p.i++
	}
	if p.done() {
		return sfItem{}, false
	}
	p.i++
	return sfItem{kind: sfBytes, text: p.s[start:p.i]}, true
}
