package handlers

import (
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// The guard: rules every admin request passes before a handler runs, on
// /api/, /debug/ and the pages alike. A page in the operator's browser can
// send requests to a cachegate on loopback, and a DNS name the attacker
// controls can be pointed at 127.0.0.1 to read the answers, so the admin
// side checks, in this order:
//
//  1. the Host: only names the admin side is reachable under (421);
//  2. the site: Sec-Fetch-Site and Origin must say the request comes from
//     the admin side's own pages or from no page at all (403 cross_site);
//  3. the client: a request from beyond this machine, or one a reverse
//     proxy passed on, needs a token; without one configured it is refused
//     (403 admin_disabled);
//  4. the token (401), then, on /api/, the body's content type (415).

// client is what the guard knows about who sent a request.
type client struct {
	// addr is the client's address: the peer's, or for a trusted proxy the
	// right-most address in its X-Forwarded-For that is not itself a
	// trusted proxy. It is invalid when a header holds no usable address.
	addr netip.Addr
	// remote says the client is not on this machine: it needs the token.
	remote bool
	// via names the proxy header a remote judgement rests on, if any.
	via string
	// trusted says the peer is a trusted proxy, whose X-Forwarded-Host
	// and X-Forwarded-Proto name the request's own origin.
	trusted bool
}

// forwardHeaders are the headers a reverse proxy adds. Their presence
// alone makes a request from an untrusted peer remote: a loopback listener
// behind a proxy must not treat every client of that proxy as local.
var forwardHeaders = []string{"X-Forwarded-For", "X-Real-IP", "Forwarded"}

// client judges where r comes from. The peer is r.RemoteAddr; proxy
// headers count only when the peer is in trusted_proxies.
func (a *API) client(r *http.Request) client {
	peer := parseNode(r.RemoteAddr)
	var via string
	for _, h := range forwardHeaders {
		if len(r.Header.Values(h)) > 0 {
			via = h
			break
		}
	}
	if via == "" {
		return client{addr: peer, remote: !isLoopback(peer)}
	}
	if !a.trusts(peer) {
		return client{addr: peer, remote: true, via: via}
	}
	chain := forwardedChain(r.Header)
	var addr netip.Addr
	for i := len(chain) - 1; i >= 0; i-- {
		addr = chain[i]
		if !addr.IsValid() || !a.trusts(addr) {
			break
		}
	}
	return client{addr: addr, remote: !isLoopback(addr), via: via, trusted: true}
}

func (a *API) trusts(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range a.proxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func isLoopback(ip netip.Addr) bool { return ip.IsValid() && ip.IsLoopback() }

// forwardedChain returns the client addresses a proxy passed on, nearest
// last: X-Forwarded-For, else the for= of Forwarded (RFC 7239), else
// X-Real-IP. An entry that is not an address ("unknown", a hidden node
// name) is kept as an invalid address, so that it stops the walk.
func forwardedChain(h http.Header) []netip.Addr {
	var nodes []string
	if v := h.Values("X-Forwarded-For"); len(v) > 0 {
		for _, line := range v {
			nodes = append(nodes, strings.Split(line, ",")...)
		}
	} else if v := h.Values("Forwarded"); len(v) > 0 {
		for _, line := range v {
			for _, elem := range strings.Split(line, ",") {
				for _, pair := range strings.Split(elem, ";") {
					k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if ok && strings.EqualFold(k, "for") {
						nodes = append(nodes, val)
					}
				}
			}
		}
	} else if v := h.Get("X-Real-IP"); v != "" {
		nodes = []string{v}
	}
	chain := make([]netip.Addr, len(nodes))
	for i, n := range nodes {
		chain[i] = parseNode(n)
	}
	return chain
}

// parseNode reads an address with or without a port, bracketed or quoted
// as Forwarded writes them; the zero Addr when it is none.
func parseNode(s string) netip.Addr {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.Unmap()
	}
	return netip.Addr{}
}

// origin returns the request's own scheme and host (with port, as the
// client sent it). Behind a trusted proxy its X-Forwarded-Proto and
// X-Forwarded-Host say what the browser used.
func origin(r *http.Request, c client) (scheme, host string) {
	scheme, host = "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if c.trusted {
		if v := lastItem(r.Header.Get("X-Forwarded-Proto")); v == "http" || v == "https" {
			scheme = v
		}
		if v := lastItem(r.Header.Get("X-Forwarded-Host")); v != "" {
			host = v
		}
	}
	return scheme, strings.ToLower(host)
}

// lastItem is the right-most item of a comma-separated header: the one the
// nearest proxy added.
func lastItem(v string) string {
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.ToLower(strings.TrimSpace(v))
}

// hostAllowed says whether the admin side answers to the Host hostport.
// Loopback names resolve to this machine on every resolver that follows
// RFC 6761. IP literals are safe too: DNS rebinding needs a name the
// attacker controls and can point at this machine, and a browser that
// visits an attacker's page sends that name, never an IP literal, as the
// Host. Anything else must be the listen address's host or in admin_hosts.
func (a *API) hostAllowed(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), ".")
	if h == "" {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	h = strings.ToLower(h)
	return h == "localhost" || strings.HasSuffix(h, ".localhost") || a.hosts[h]
}

// sameSite checks Sec-Fetch-Site and Origin. Sec-Fetch-Site "none" (the
// user typed the address or opened a bookmark) is fine for reading, not
// for an unsafe page request, which only the admin side's own forms send.
//
// A page opened from a link on another site (a top-level navigation with
// a safe method) is let through: it changes nothing, the session cookie is
// SameSite=Strict so it arrives signed out, and the page cannot be framed.
func sameSite(r *http.Request, scheme, host string, unsafe bool) *Error {
	switch site := strings.ToLower(r.Header.Get("Sec-Fetch-Site")); {
	case site == "" || site == "same-origin":
	case site == "none" && !unsafe:
	case !unsafe && isPageNavigation(r):
		return nil
	default:
		return &Error{Status: http.StatusForbidden, Code: "cross_site",
			Message: "the admin side refuses requests sent by other sites (Sec-Fetch-Site: " + site + "); use its own pages, or a client such as curl"}
	}
	if o := r.Header.Get("Origin"); o != "" && !originMatches(o, scheme, host) {
		return &Error{Status: http.StatusForbidden, Code: "cross_site",
			Message: "the admin side refuses requests sent by other sites (Origin " + quote(o) + " is not " + scheme + "://" + host + "); use its own pages, or a client such as curl"}
	}
	return nil
}

// isPageNavigation reports whether r is a browser opening a page in a tab
// (not a fetch, a frame or a websocket), by its Fetch Metadata.
func isPageNavigation(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		strings.EqualFold(r.Header.Get("Sec-Fetch-Mode"), "navigate") &&
		strings.EqualFold(r.Header.Get("Sec-Fetch-Dest"), "document")
}

// originMatches compares an Origin header with scheme://host, ignoring
// case and default ports. "null" (a sandboxed or privacy-sensitive
// context) never matches.
func originMatches(o, scheme, host string) bool {
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.Path != "" && u.Path != "/" {
		return false
	}
	return strings.EqualFold(u.Scheme, scheme) && stripDefaultPort(scheme, strings.ToLower(u.Host)) == stripDefaultPort(scheme, host)
}

func stripDefaultPort(scheme, host string) string {
	if scheme == "http" {
		return strings.TrimSuffix(host, ":80")
	}
	return strings.TrimSuffix(host, ":443")
}

// admit applies the Host, site and client rules shared by every admin
// route; unsafe asks for the stricter site rule of page forms.
func (a *API) admit(r *http.Request, unsafe bool) (client, *Error) {
	c := a.client(r)
	scheme, host := origin(r, c)
	if !a.hostAllowed(host) {
		return c, &Error{Status: http.StatusMisdirectedRequest, Code: "unknown_host",
			Message: "the admin side does not answer to the host " + quote(host) + ": it answers to localhost, IP addresses, the listen address and the names in admin_hosts (-admin-hosts, CACHEGATE_ADMIN_HOSTS)"}
	}
	if err := sameSite(r, scheme, host, unsafe); err != nil {
		return c, err
	}
	if a.disabled != "" {
		return c, &Error{Status: http.StatusForbidden, Code: "admin_disabled", Message: a.disabled}
	}
	if c.remote && a.token == "" {
		why := "this request comes from beyond this machine"
		if c.via != "" {
			why = "this request came through a proxy (" + c.via + ")"
		}
		return c, &Error{Status: http.StatusForbidden, Code: "admin_disabled",
			Message: "the admin side needs a token: " + why + " and no admin token is set; set one with -admin-token, CACHEGATE_ADMIN_TOKEN or CACHEGATE_ADMIN_TOKEN_FILE (a reverse proxy listed in trusted_proxies has its clients judged by X-Forwarded-For)"}
	}
	return c, nil
}

// isUnsafe reports whether method may change state.
func isUnsafe(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// checkBodyType refuses an unsafe /api/ request whose body is not JSON
// (or, for /api/import, NDJSON). A form, text/plain or multipart body is
// what a page on another site can send without asking the browser first,
// so no such type reaches a handler, even with an empty body. A request
// without a body and without a type (curl -X POST) passes: the site rules
// have already refused it if a browser sent it from elsewhere.
func checkBodyType(r *http.Request) *Error {
	ct := r.Header.Get("Content-Type")
	if ct == "" && r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		return nil
	}
	ndjson := r.URL.Path == "/api/import"
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		if mt == "application/json" || ndjson && mt == "application/x-ndjson" {
			return nil
		}
	}
	got := "no Content-Type"
	if ct != "" {
		got = "Content-Type " + quote(ct)
	}
	msg := "admin requests with a body take JSON: send Content-Type: application/json (curl --json '{...}'); got " + got
	if ndjson {
		msg = "an import takes the export's NDJSON: send Content-Type: application/x-ndjson (curl -H 'Content-Type: application/x-ndjson' --data-binary @cache.ndjson) or application/json; got " + got
	}
	return &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: msg}
}
