package web

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// Config is everything the server needs, already parsed and validated by
// cmd/server. Tests build it directly.
type Config struct {
	// Listen is the address of the gateway and admin side, host:port.
	Listen string
	// Backend is the DSN of the default backend (sqlite://, memory://,
	// file://, mongodb://).
	Backend string
	// Backends are named backends that upstreams may choose by name, name
	// to DSN. The default backend is also reachable as "default".
	Backends map[string]string
	// ExpireAfter is the default expiry of upstreams that set none.
	ExpireAfter cache.Expiry
	// Upstreams are the only hosts the gateway reaches.
	Upstreams []UpstreamConfig
	// AdminToken guards /api/ and the dashboard. Required when Listen is
	// not a loopback address.
	AdminToken string
	// AdminHosts are the Host names, beyond loopback names, IP literals
	// and Listen's host, that the admin side answers to (DNS rebinding
	// defence); /fetch/ answers any Host.
	AdminHosts []string
	// TrustedProxies are the reverse proxies whose X-Forwarded-For (and
	// -Host, -Proto) the admin side believes. A request carrying proxy
	// headers from another peer needs the admin token.
	TrustedProxies []netip.Prefix
	// Demo mounts an in-process httpbin as the upstream "demo".
	Demo bool
	// NoFastLane sends every request through net/http. By default cache
	// hits held in memory are answered before it parses them (see
	// web/fastlane): same answers, about twice the hits per second.
	NoFastLane bool
	// ShutdownTimeout bounds how long in-flight requests may take to finish
	// on shutdown.
	ShutdownTimeout time.Duration
}

// UpstreamConfig is one configured upstream.
type UpstreamConfig struct {
	// Name is the first path segment after /fetch/.
	Name string
	// URL is the upstream's base URL (scheme, host, optional path prefix).
	URL string
	// Backend is the name of a configured backend; empty means the default.
	Backend string
	// Timeout bounds one upstream exchange until the response headers
	// arrive; 0 means DefaultUpstreamTimeout.
	Timeout time.Duration
	// Policy holds the caching rules.
	Policy cache.Policy
	// RevalidateHeaders are sent with admin revalidations of this
	// upstream's entries, never with /fetch/ traffic: values for request
	// headers stored REDACTED, the credential entries were cached for, or
	// a header the upstream wants (see gateway.Upstream). Secrets: never
	// stored, logged or shown.
	RevalidateHeaders http.Header
}

// DefaultUpstreamTimeout bounds an upstream exchange when none is set.
const DefaultUpstreamTimeout = 30 * time.Second
