package main

// The checks of the settings, shared by every source.

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/web"
)

// checkRevalidateHeader refuses header names that are not tokens, and
// those the revalidation itself sets or that describe the connection.
func checkRevalidateHeader(name string) error {
	if name == "" || strings.IndexFunc(name, func(r rune) bool { return r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) }) >= 0 {
		return fmt.Errorf("bad header name %q: want a token like Authorization or X-Api-Key", name)
	}
	c := http.CanonicalHeaderKey(name)
	switch c {
	case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Upgrade",
		"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range":
		return fmt.Errorf("header %s cannot be set: the revalidation or the connection sets it", c)
	}
	if strings.HasPrefix(c, "X-Cachegate-") {
		return fmt.Errorf("header %s cannot be set: X-Cachegate- headers are cachegate's own", c)
	}
	return nil
}

// parseDuration reads a timeout: a Go duration, "1d", or plain seconds.
func parseDuration(s string) (time.Duration, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "never", "never_expire", "do_not_cache", "expire_immediately":
		return 0, fmt.Errorf("bad duration %q: want %s", s, durationWant)
	}
	e, err := cache.ParseExpiry(s)
	if err != nil || e < 0 {
		return 0, fmt.Errorf("bad duration %q: want %s", s, durationWant)
	}
	return time.Duration(e), nil
}

func parseMode(s string) (cache.Mode, error) {
	switch m := cache.Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case cache.ModeRequestsCache, cache.ModeRFC9111:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q: want %s", s, modeWant)
}

// checkListen accepts host:port with a numeric port; the host may be empty
// (every interface).
func checkListen(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		var n int
		n, err = strconv.Atoi(port)
		if err == nil && (n < 0 || n > 65535) {
			err = errors.New("port out of range")
		}
	}
	if err != nil {
		return fmt.Errorf("bad address %q: want host:port, like 127.0.0.1:8080 or :8080", s)
	}
	return nil
}

// parseAdminHosts checks admin_hosts: plain DNS names, which the admin
// side compares with the Host header without its port.
func parseAdminHosts(list []string) ([]string, error) {
	const want = "want a host name without scheme or port, like cache.example.com"
	var hosts []string
	for _, h := range list {
		name := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		ok := name != "" && len(name) <= 253
		for _, label := range strings.Split(name, ".") {
			ok = ok && label != "" && !strings.HasPrefix(label, "-") && !strings.HasSuffix(label, "-") &&
				strings.IndexFunc(label, func(r rune) bool {
					return !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_')
				}) < 0
		}
		if !ok {
			return nil, fmt.Errorf("bad host name %q: %s", h, want)
		}
		hosts = append(hosts, name)
	}
	return hosts, nil
}

// parseProxies reads trusted_proxies: IP addresses (one host each) and
// CIDR ranges.
func parseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var ip netip.Addr
			if ip, err = netip.ParseAddr(s); err == nil && ip.Zone() != "" {
				err = errors.New("zone")
			} else if err == nil {
				ip = ip.Unmap()
				p = netip.PrefixFrom(ip, ip.BitLen())
			}
		}
		if err != nil {
			return nil, fmt.Errorf("bad proxy address %q: want an IP address or a CIDR range, like 127.0.0.1 or 10.0.0.0/8", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// dsnSchemes are the backends web.Server knows.
var dsnSchemes = []string{"sqlite", "memory", "file", "mongodb", "mongodb+srv"}

func checkDSN(s string) error {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok || !slices.Contains(dsnSchemes, strings.ToLower(scheme)) {
		return fmt.Errorf("bad backend DSN %q: want sqlite://PATH, memory://, file:///DIR, mongodb://HOST/DB or mongodb+srv://HOST/DB", s)
	}
	// write_behind_window bounds what a crash loses: a typo must stop the
	// start, not pass unnoticed until the backend opens.
	if _, query, ok := strings.Cut(s, "?"); ok {
		if q, err := url.ParseQuery(query); err == nil && q.Has("write_behind_window") {
			if d, err := time.ParseDuration(q.Get("write_behind_window")); err != nil || d < 0 {
				return fmt.Errorf("bad backend DSN %q: write_behind_window %q: want a duration like 200ms, or 0 to store every miss before answering it", web.RedactDSN(s), q.Get("write_behind_window"))
			}
		}
	}
	return nil
}

// checkName accepts names that are safe as one URL path segment.
func checkName(kind, s string) error {
	if s == "" || s == "." || s == ".." || strings.IndexFunc(s, func(r rune) bool { return !isNameRune(r) }) >= 0 {
		return fmt.Errorf("bad %s name %q: want letters, digits, '.', '_' and '-' only", kind, s)
	}
	return nil
}

func isNameRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-'
}

func checkUpstreamURL(s string) error {
	const want = "want an absolute http or https URL with a host and no query or fragment, like https://api.github.com"
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Opaque != "" || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("bad URL %q: %s", s, want)
	case u.RawQuery != "" || u.ForceQuery:
		return fmt.Errorf("bad URL %q: has a query; %s", s, want)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Errorf("bad URL %q: has a fragment; %s", s, want)
	}
	return nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
