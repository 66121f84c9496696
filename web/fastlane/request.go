package fastlane

import (
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// maxHead bounds the request head the lane parses; a longer one goes to
// net/http, whose own limit (Server.MaxHeaderBytes) applies.
const maxHead = 8 << 10

// verdict is what the lane makes of the bytes at the start of its buffer.
type verdict int

const (
	needMore verdict = iota // no complete head yet
	tryFast                 // a complete GET the lane may answer
	handOff                 // a complete request for net/http, of known length
	passAll                 // something the lane does not follow: net/http takes the connection
)

// parsed is one request head found by scan.
type parsed struct {
	n        int   // length of the head, blank line included
	body     int64 // Content-Length of a request handed off
	method   string
	target   [2]int     // offsets of the request target
	host     [2]int     // offsets of the Host value
	fields   [][4]int   // offsets of each other field's name and value
	fieldBuf [16][4]int // backing array for fields
}

var crlf = []byte("\r\n")

// scan reads one request head from the start of b. It is strict: anything
// unusual (bare LF line ends, folded lines, HTTP/1.0, bodies sent chunked,
// Expect, Connection: close, upgrades, several Hosts) is passAll or
// handOff, so that net/http, not the lane, decides what such a request
// means and answers malformed ones with its usual errors.
func scan(b []byte, p *parsed) verdict {
	*p = parsed{fields: p.fieldBuf[:0]}
	end := bytes.Index(b, crlf)
	if end < 0 {
		return incomplete(b)
	}
	line := b[:end]
	if bytes.IndexByte(line, '\n') >= 0 {
		return passAll
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return passAll
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return passAll
	}
	if string(rest[sp2+1:]) != "HTTP/1.1" {
		return passAll
	}
	// Only a GET may be answered here: an Answer is a whole response.
	if string(line[:sp1]) == http.MethodGet {
		p.method = http.MethodGet
	}
	p.target = [2]int{sp1 + 1, sp1 + 1 + sp2}
	for _, c := range b[p.target[0]:p.target[1]] {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return passAll
		}
	}

	fast := p.method != ""
	hosts := 0
	contentLength := int64(-1)
	pos := end + 2
	for {
		end := bytes.Index(b[pos:], crlf)
		if end < 0 {
			return incomplete(b)
		}
		line := b[pos : pos+end]
		start := pos
		pos += end + 2
		if len(line) == 0 {
			break
		}
		if bytes.IndexByte(line, '\n') >= 0 || line[0] == ' ' || line[0] == '\t' {
			return passAll // bare LF, or an obsolete folded line
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return passAll
		}
		vs, ve := colon+1, len(line)
		for vs < ve && (line[vs] == ' ' || line[vs] == '\t') {
			vs++
		}
		for ve > vs && (line[ve-1] == ' ' || line[ve-1] == '\t') {
			ve--
		}
		value := line[vs:ve]
		if !isFieldValue(value) {
			return passAll
		}
		name := line[:colon]
		switch {
		case equalFold(name, "Host"):
			hosts++
			p.host = [2]int{start + vs, start + ve}
			continue
		case equalFold(name, "Content-Length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || !digits(value) || (contentLength >= 0 && n != contentLength) {
				return passAll
			}
			contentLength = n
			if n > 0 {
				fast = false
			}
		case equalFold(name, "Transfer-Encoding"):
			return passAll
		case equalFold(name, "Upgrade"):
			return passAll // the connection may stop being HTTP
		case equalFold(name, "Expect"):
			fast = false
		case equalFold(name, "Connection"):
			if !equalFold(value, "keep-alive") {
				fast = false // close, or hop-by-hop field names
			}
		}
		p.fields = append(p.fields, [4]int{start, start + colon, start + vs, start + ve})
	}
	if hosts != 1 || !isHost(b[p.host[0]:p.host[1]]) {
		return passAll
	}
	p.n = pos
	if contentLength > 0 {
		p.body = contentLength
	}
	if fast {
		return tryFast
	}
	return handOff
}

// digits reports whether b is a decimal number without sign, as
// net/http wants a Content-Length.
func digits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// incomplete is scan's answer when b ends inside a head.
func incomplete(b []byte) verdict {
	if len(b) >= maxHead {
		return passAll
	}
	if bytes.IndexByte(b, '\n') >= 0 && bytes.Index(b, crlf) < 0 {
		return passAll // bare LF lines
	}
	return needMore
}

// equalFold is strings.EqualFold for ASCII field names, without
// converting b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := lower(b[i]), lower(s[i])
		if c != d {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// isToken reports whether b is a field name (RFC 9110 token), as
// httpguts.ValidHeaderFieldName does, without converting b.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return true
}

// isFieldValue reports whether b may be a field value: no control
// characters but tab (httpguts.ValidHeaderFieldValue).
func isFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// isHost reports whether b is a plausible Host value: the bytes
// httpguts.ValidHostHeader allows, which are ASCII.
func isHost(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || !validHostByte[c] {
			return false
		}
	}
	return true
}

var validHostByte = alnumAnd("!$%&'()*+,-.:;=[]_~")

// alnumAnd returns the set of ASCII letters, digits and the bytes of more.
func alnumAnd(more string) (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for i := 0; i < len(more); i++ {
		t[more[i]] = true
	}
	return t
}

// request builds the *http.Request of a head scan accepted, as net/http
// would (Host taken out of the header, canonical field names), in st,
// which the connection reuses for its next request: Serve must not keep
// r. All its strings share one copy of the head, the one allocation of a
// plain request.
func (p *parsed) request(b []byte, remoteAddr string, st *requestState) (*http.Request, bool) {
	s := string(b[:p.n])
	target := s[p.target[0]:p.target[1]]
	u := &st.url
	if !parsePlainTarget(target, u) {
		var err error
		if u, err = url.ParseRequestURI(target); err != nil {
			return nil, false
		}
	}
	if st.header == nil {
		st.header = make(http.Header, len(p.fields))
	}
	h := st.header
	clear(h)
	if cap(st.values) < len(p.fields) {
		st.values = make([]string, len(p.fields))
	}
	vals := st.values[:len(p.fields)]
	for i, f := range p.fields {
		k := textproto.CanonicalMIMEHeaderKey(s[f[0]:f[1]])
		vals[i] = s[f[2]:f[3]]
		if prev, ok := h[k]; ok {
			h[k] = append(prev, vals[i])
			continue
		}
		h[k] = vals[i : i+1 : i+1]
	}
	st.req = http.Request{
		Method:     p.method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Body:       http.NoBody,
		Host:       s[p.host[0]:p.host[1]],
		RemoteAddr: remoteAddr,
		RequestURI: target,
	}
	return &st.req, true
}

// requestState holds what request builds, kept by the connection from one
// request to the next.
type requestState struct {
	req    http.Request
	url    url.URL
	header http.Header
	values []string // backing array of the header's values
}

// parsePlainTarget parses the commonest request target, an absolute path
// of unreserved characters with an optional query, into u exactly as
// url.ParseRequestURI would, without allocating. It returns false, u
// unspecified, for any other target.
func parsePlainTarget(target string, u *url.URL) bool {
	path, query, hasQuery := strings.Cut(target, "?")
	if len(path) == 0 || path[0] != '/' {
		return false
	}
	for i := 0; i < len(path); i++ {
		if c := path[i]; c >= 0x80 || !plainPathByte[c] {
			return false
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c < 0x20 || c == 0x7f {
			return false // ParseRequestURI refuses control bytes
		}
	}
	*u = url.URL{Path: path, RawQuery: query}
	if hasQuery && query == "" && strings.Count(target, "?") == 1 {
		u.ForceQuery = true
	}
	return true
}

// plainPathByte: the bytes url.URL.EscapedPath leaves as they are, so
// that the path needs neither unescaping nor a RawPath.
var plainPathByte = alnumAnd("-._~/")
