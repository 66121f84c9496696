package handlers

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// sameOrigin reports whether the request's Origin is this server, as the
// browser reached it. No Origin means no browser: a script or tool that
// the guard in front has already let in, and no page of another site can
// send a websocket handshake without one.
//
// Behind a reverse proxy the browser reached the proxy, which names what
// it reached in X-Forwarded-Proto and X-Forwarded-Host; an Origin equal to
// that passes too. A browser cannot set those headers on a handshake, so
// no page of another site gets in by them; which peers may speak for the
// client is the guard's judgement, made before this handler runs.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if originIs(o, scheme, r.Host) {
		return true
	}
	proto, host := forwardedItem(r, "X-Forwarded-Proto"), forwardedItem(r, "X-Forwarded-Host")
	if proto == "" && host == "" {
		return false
	}
	if proto != "http" && proto != "https" {
		proto = scheme
	}
	if host == "" {
		host = r.Host
	}
	return originIs(o, proto, host)
}

// originIs compares an Origin header with scheme://host, ignoring case
// and default ports. "null" (a sandboxed frame) never matches.
func originIs(origin, scheme, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return false
	}
	return strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(hostPort(u.Host, scheme), hostPort(host, scheme))
}

// forwardedItem is the right-most item of a proxy header: the one the
// nearest proxy added.
func forwardedItem(r *http.Request, name string) string {
	v := r.Header.Get(name)
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.ToLower(strings.TrimSpace(v))
}

func requestOrigin(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// hostPort spells host with its port, the scheme's default when absent,
// so "example.com" and "example.com:80" compare equal over http.
func hostPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if scheme == "https" {
		return net.JoinHostPort(strings.Trim(host, "[]"), "443")
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), "80")
}
