package handlers

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"
)

// TestSameOrigin: the origins /ws takes, directly and behind a reverse
// proxy that names the origin the browser reached.
func TestSameOrigin(t *testing.T) {
	for _, tc := range []struct {
		name, host, origin string
		tls                bool
		fwdProto, fwdHost  string
		want               bool
	}{
		{name: "no origin", host: "127.0.0.1:8080", want: true},
		{name: "same", host: "127.0.0.1:8080", origin: "http://127.0.0.1:8080", want: true},
		{name: "default port", host: "cache.example", origin: "http://cache.example:80", want: true},
		{name: "tls", host: "cache.example", origin: "https://cache.example", tls: true, want: true},
		{name: "http page, tls socket", host: "cache.example", origin: "http://cache.example", tls: true},
		{name: "other host", host: "127.0.0.1:8080", origin: "http://evil.example"},
		{name: "other port", host: "127.0.0.1:8080", origin: "http://127.0.0.1:8081"},
		{name: "null", host: "127.0.0.1:8080", origin: "null"},
		{name: "origin with a path", host: "127.0.0.1:8080", origin: "http://127.0.0.1:8080/x"},
		{name: "tls proxy", host: "127.0.0.1:8080", origin: "https://cache.example", fwdProto: "https", fwdHost: "cache.example", want: true},
		{name: "tls proxy, same host", host: "cache.example", origin: "https://cache.example", fwdProto: "https", want: true},
		{name: "chain of proxies: the nearest counts", host: "127.0.0.1:8080", origin: "https://cache.example", fwdProto: "http, https", fwdHost: "evil.example, cache.example", want: true},
		{name: "other site behind a proxy", host: "127.0.0.1:8080", origin: "https://evil.example", fwdProto: "https", fwdHost: "cache.example"},
		{name: "proxy says http, page is https", host: "cache.example", origin: "https://cache.example", fwdProto: "http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/ws", nil)
			r.Host = tc.host
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.fwdProto != "" {
				r.Header.Set("X-Forwarded-Proto", tc.fwdProto)
			}
			if tc.fwdHost != "" {
				r.Header.Set("X-Forwarded-Host", tc.fwdHost)
			}
			if got := sameOrigin(r); got != tc.want {
				t.Fatalf("sameOrigin = %v, want %v", got, tc.want)
			}
		})
	}
}
