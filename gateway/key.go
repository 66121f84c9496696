package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway/expr"
)

// Redacted replaces the value of ignored parameters and credentials in
// everything stored, shown or exported.
const Redacted = "REDACTED"

// keyedRequest is a client request as the cache sees it.
type keyedRequest struct {
	// method is the method used for caching: HEAD is answered from GET.
	method string
	// target is the real upstream URL to call (secrets included).
	target *url.URL
	// storedURL is the normalized URL with ignored parameters redacted.
	storedURL string
	// rules is what the policy matches patterns against.
	rules cache.Request
	// base is the key before any Vary variant.
	base string
	// header is the client's request header.
	header http.Header
	// storedHeader holds the matched request headers, redacted.
	storedHeader http.Header
	// body is the buffered request body of a cacheable non-GET request.
	body []byte
	// reqMethod is the client's method, for the key memo (HEAD and GET
	// share a cache method but not a memo entry).
	reqMethod string
	// keyExpr is what the upstream's key expression gave, and keyErr why
	// it failed (the default key is then used), for Explain.
	keyExpr string
	keyErr  error
}

// normalizeURL returns u as cachegate keys and stores it: scheme and host
// lower case, default port dropped, query parameters sorted. keyQuery leaves
// ignored parameters out; storedQuery keeps them with their value redacted.
func normalizeURL(u *url.URL, p *cache.Policy) (key, stored, noScheme string) {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Host)
	if h, port, ok := strings.Cut(host, ":"); ok && !strings.Contains(port, ":") {
		if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
			host = h
		}
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	keyQ, storedQ := normalizeQuery(u.RawQuery, p)
	base := host + path
	stored = scheme + "://" + base
	noScheme = base
	if storedQ != "" {
		stored += "?" + storedQ
		noScheme += "?" + storedQ
	}
	key = scheme + "://" + base
	if keyQ != "" && !p.Key.IgnoreQuery {
		key += "?" + keyQ
	}
	return key, stored, noScheme
}

// normalizeQuery sorts the query by name then value, keeping each pair's
// original encoding so that the key does not depend on how a client
// escaped it beyond what the upstream would see.
func normalizeQuery(raw string, p *cache.Policy) (key, stored string) {
	if raw == "" {
		return "", ""
	}
	var keyParts, storedParts []string
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, st := part, part
		if strings.IndexByte(part, ';') >= 0 {
			// Some servers split parameters on ';' too: an ignored one
			// after a ';' is redacted and left out of the key like any
			// other, whether or not this upstream is such a server.
			k, st = splitSemicolons(part, p)
		} else if p.IsIgnored(paramName(part)) {
			name, _, _ := strings.Cut(part, "=")
			k, st = "", name+"="+Redacted
		}
		if k != "" {
			keyParts = append(keyParts, k)
		}
		storedParts = append(storedParts, st)
	}
	// Each list in its own order (by name, then the whole part), so that
	// normalising either again gives it back unchanged.
	return strings.Join(sortParams(keyParts), "&"), strings.Join(sortParams(storedParts), "&")
}

// sortParams sorts query parts by their decoded names, then as text.
func sortParams(parts []string) []string {
	sort.SliceStable(parts, func(i, j int) bool {
		ni, nj := paramName(parts[i]), paramName(parts[j])
		if ni != nj {
			return ni < nj
		}
		return parts[i] < parts[j]
	})
	return parts
}

// paramName is the decoded name of the query parameter part starts with.
func paramName(part string) string {
	name, _, _ := strings.Cut(part, "=")
	name, _, _ = strings.Cut(name, ";")
	if decoded, err := url.QueryUnescape(name); err == nil {
		return decoded
	}
	return name
}

// splitSemicolons reads a query part as ';'-separated parameters: key is
// the part without the ignored ones ("" when all are), stored the part
// with their values redacted.
func splitSemicolons(part string, p *cache.Policy) (key, stored string) {
	pieces := strings.Split(part, ";")
	kept := make([]string, 0, len(pieces))
	for i, piece := range pieces {
		name := paramName(piece)
		if piece == "" || !p.IsIgnored(name) {
			kept = append(kept, piece)
			continue
		}
		raw, _, _ := strings.Cut(piece, "=")
		pieces[i] = raw + "=" + Redacted
	}
	if strings.Trim(strings.Join(kept, ""), ";") == "" {
		return "", strings.Join(pieces, ";")
	}
	return strings.Join(kept, ";"), strings.Join(pieces, ";")
}

// RedactURL returns a URL string with ignored parameters' values replaced,
// for logs and errors.
func RedactURL(u *url.URL, p *cache.Policy) string {
	_, stored, _ := normalizeURL(u, p)
	return stored
}

// keyHeaders returns the request headers that take part in the key, in a
// stable order, and the same headers as stored (redacted).
func keyHeaders(h http.Header, p *cache.Policy) (parts []string, stored http.Header) {
	var names []string
	switch {
	case p.Key.IgnoreHeaders:
	case p.MatchAllHeaders:
		for name := range h {
			if isHopByHop(name) || strings.HasPrefix(name, "X-Cachegate-") || isConditional(name) || isCredential(name) {
				continue
			}
			names = append(names, name)
		}
	default:
		names = append(names, p.MatchHeaders...)
	}
	sort.Strings(names)
	stored = http.Header{}
	for _, name := range names {
		if strings.HasPrefix(http.CanonicalHeaderKey(name), cachegatePrefix) {
			// Control headers and the admin token are never part of
			// the key, nor stored, whatever match_headers lists.
			continue
		}
		v := strings.Join(h.Values(name), ", ")
		if isAcceptEncoding(name) {
			v = normalizedAcceptEncoding(h)
		}
		if ignoredHeader(name, p) {
			if v != "" {
				stored.Set(name, Redacted)
			}
			continue
		}
		parts = append(parts, name, v)
		if v != "" {
			switch {
			case isCredential(name):
				stored.Set(name, Redacted)
			case isAcceptEncoding(name):
				stored.Set(name, v) // as sent upstream
			default:
				stored[name] = h.Values(name)
			}
		}
	}
	// Credentials always count, hashed into the key, so that a response is
	// never served to someone holding a different credential, even when
	// ignored_parameters lists them (requests-cache's default list has
	// Authorization), unless share_credentialed_responses opts out.
	for _, name := range cache.CredentialHeaders {
		if v := h[name]; len(v) > 0 && p.KeysCredential(name) {
			parts = append(parts, "credential:"+name, strings.Join(v, "\n"))
		}
	}
	return parts, stored
}

func isCredential(name string) bool { return cache.IsCredential(name) }

func ignoredHeader(name string, p *cache.Policy) bool { return p.IsIgnored(name) }

// normalizeBody leaves ignored parameters out of a JSON object or form body,
// as requests-cache does, so they do not split the key. Names match
// case-insensitively, as everywhere else.
func normalizeBody(body []byte, contentType string, p *cache.Policy) []byte {
	if len(p.IgnoredParameters) == 0 || len(body) == 0 {
		return body
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case mt == "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return body
		}
		for name := range vals {
			if p.IsIgnored(name) {
				delete(vals, name)
			}
		}
		return []byte(vals.Encode())
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		var obj map[string]json.RawMessage
		dec := json.NewDecoder(bytes.NewReader(body))
		if err := dec.Decode(&obj); err != nil {
			return body
		}
		for name := range obj {
			if p.IsIgnored(name) {
				delete(obj, name)
			}
		}
		out, err := json.Marshal(obj) // map keys come out sorted
		if err != nil {
			return body
		}
		return out
	}
	return body
}

// newKeyedRequest computes the cache key of a request to up and everything
// stored alongside it.
func newKeyedRequest(up *upstream, method string, target *url.URL, header http.Header, body []byte) (*keyedRequest, error) {
	p := &up.Policy
	keyURL, storedURL, noScheme := normalizeURL(target, p)
	kr := &keyedRequest{method: method, target: target, storedURL: storedURL, header: header, body: body}
	// The per-request expiry is a client's override of shared policy:
	// ignored, bad value or not, unless the upstream or the token allows it.
	if v := first(header, cache.ExpireAfterHeader); v != "" && up.overrides(header) {
		e, err := cache.ParseExpiry(v)
		if err != nil {
			return nil, fmt.Errorf("header %s: %v", cache.ExpireAfterHeader, err)
		}
		kr.rules.ExpireAfter = &e
	}
	// So is the request's Cache-Control: max-age as an expiry
	// (requests-cache's second step); as a limit on the age it will
	// accept, it applies to every client (Judge).
	if up.overrides(header) {
		if v, ok := cache.ParseCacheControl(header).Seconds("max-age"); ok {
			e := cache.Expiry(v)
			kr.rules.MaxAge = &e
		}
	}
	kr.rules.Method = method
	kr.rules.URL = noScheme
	kr.rules.Header = header
	// Patterns starting with '/' see the path below the upstream's base.
	basePath := strings.TrimSuffix(up.URL.EscapedPath(), "/")
	_, after, _ := strings.Cut(noScheme, "/")
	kr.rules.Path = strings.TrimPrefix("/"+after, basePath)
	if !strings.HasPrefix(kr.rules.Path, "/") {
		kr.rules.Path = "/" + kr.rules.Path
	}

	parts := []string{up.Name, method, keyURL}
	if up.KeyExpr != nil {
		// The expression stands in for the URL only: the method, the
		// body, matched headers, credentials and Vary still count, so
		// it can merge URLs but never answers one client with another's
		// credentialed or varied response. "key" keeps its keys apart
		// from default ones; a request it fails on keeps the default.
		in := exprInput(up, method, target, storedURL, header)
		if v, err := up.KeyExpr.Eval(&in); err != nil {
			kr.keyErr = err
		} else {
			kr.keyExpr = v
			parts = []string{up.Name, method, "key", v}
		}
	}
	if len(body) > 0 && !p.Key.IgnoreBody {
		parts = append(parts, "body", string(normalizeBody(body, header.Get("Content-Type"), p)))
	}
	hparts, stored := keyHeaders(header, p)
	parts = append(parts, hparts...)
	kr.base = cache.MakeKey(parts...)
	kr.storedHeader = stored
	return kr, nil
}

// exprInput is the request as the upstream's expressions see it: the query
// as stored (sorted, ignored parameters REDACTED), and ignored parameters
// and credentials REDACTED in the query and header maps too, since what a
// key expression gives is shown by /api/explain.
func exprInput(up *upstream, method string, target *url.URL, storedURL string, header http.Header) expr.Input {
	_, query, _ := strings.Cut(storedURL, "?")
	return expr.Input{Method: method, URL: target, Query: query, Header: header, Secrets: up}
}

// Secret reports whether expressions see the value of the query parameter
// or header name as REDACTED: an ignored parameter or a credential.
func (u *upstream) Secret(name string) bool {
	return cache.IsCredential(name) || u.Policy.IsIgnored(name)
}

// storableHeader is what a shared cache may keep of response header h:
// without the cookies it sets (they belong to the client that caused
// them), the length (the stored body has its own), the fields specific
// to the proxy that answered (RFC 9111 section 3.1; Proxy-Authenticate
// and Proxy-Authorization are hop-by-hop, and gone already), and the
// fields h names in private="..." or no-cache="...".
func storableHeader(h http.Header) http.Header {
	stored := h.Clone()
	for _, name := range cache.SetCookieHeaders {
		stored.Del(name)
	}
	stored.Del("Content-Length")
	stored.Del("Proxy-Authentication-Info")
	if cc := cache.ParseCacheControl(h); cc != nil {
		for _, d := range []string{"private", "no-cache"} {
			if v := cc[d]; v != "" {
				for _, f := range strings.Split(v, ",") {
					stored.Del(strings.TrimSpace(f))
				}
			}
		}
	}
	return stored
}

// mergeNotModified updates the stored header of e with those of a 304
// (RFC 9111 section 4.3.4), except the fields that describe the body it
// did not send and those a shared cache never keeps (storableHeader).
func mergeNotModified(e *cache.Entry, h http.Header) {
	if e.Header == nil {
		e.Header = http.Header{} // imported without headers
	}
	for k, v := range storableHeader(h) {
		switch k {
		case "Content-Encoding", "Content-Range", "Transfer-Encoding":
			continue
		}
		e.Header[k] = v
	}
}

// newEntry builds the entry for a response to kr. Set-Cookie is never
// stored (it belongs to the client that caused it), and in a shared cache
// neither are the fields a response names in private="...".
func (kr *keyedRequest) newEntry(up *upstream, status int, h http.Header, body []byte, reqTime, respTime time.Time, dec cache.Decision) *cache.Entry {
	stored := storableHeader(h)
	reqHeader := kr.storedHeader.Clone()
	for _, name := range varyNames(h) {
		vals := kr.header.Values(name)
		switch {
		case len(vals) == 0:
		case isCredential(name) || ignoredHeader(name, &up.Policy):
			reqHeader.Set(name, Redacted)
		case name == "Accept-Encoding":
			reqHeader.Set(name, normalizedAcceptEncoding(kr.header)) // as sent upstream
		default:
			reqHeader[name] = vals
		}
	}
	if body == nil {
		body = []byte{}
	}
	e := &cache.Entry{
		Key:           kr.base,
		BaseKey:       kr.base,
		Upstream:      up.Name,
		Method:        kr.method,
		URL:           kr.storedURL,
		RequestHeader: reqHeader,
		Status:        status,
		Header:        stored,
		Body:          body,
		Size:          int64(len(body)),
		ContentType:   cache.MediaType(h.Get("Content-Type")),
		RequestTime:   reqTime,
		Created:       respTime,
		Expires:       dec.Expires,
		ETag:          h.Get("ETag"),
		LastModified:  h.Get("Last-Modified"),
		Reason:        dec.Reason,
	}
	kr.recordRequest(up, e)
	return e
}

// first returns the first value of a header given by its canonical name,
// without http.Header.Get's canonicalization (the request path calls this
// for every hit).
func first(h http.Header, canonical string) string {
	if v := h[canonical]; len(v) > 0 {
		return v[0]
	}
	return ""
}
