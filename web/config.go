package web

import (
	"bufio"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/gateway/expr"
)

// Config is everything the server needs, already parsed and validated by
// cmd/server. Tests build it directly.
type Config struct {
	// Listen is the address of the gateway and admin side, host:port.
	Listen string
	// MetricsListen, when set, is a second address serving only /metrics,
	// without the admin guard: for a scraper on a network of its own.
	MetricsListen string
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
	// MaxInflightBytes bounds the bytes of response bodies held in memory
	// until they are stored; a miss the budget cannot hold streams to its
	// client unstored. 0 means DefaultMaxInflightBytes().
	MaxInflightBytes int64
	// The timeouts of client connections; 0 means the default.
	// ClientHeaderTimeout bounds reading a request's head
	// (DefaultClientHeaderTimeout), ClientReadTimeout reading the whole
	// request, body included (DefaultClientReadTimeout; net/http lifts it
	// once the request is read, so it never cuts an answer), ClientIdleTimeout the
	// wait for the next request on a kept-alive connection
	// (DefaultClientIdleTimeout). ClientWriteTimeout cuts a streamed answer
	// when one write of it makes no progress for that long
	// (DefaultClientWriteTimeout): set write by write, it never cuts a
	// client that keeps reading.
	ClientHeaderTimeout time.Duration
	ClientReadTimeout   time.Duration
	ClientWriteTimeout  time.Duration
	ClientIdleTimeout   time.Duration
	// Load reads the configuration again from where this one came from,
	// for Server.Reload (SIGHUP, POST /api/reload); nil when there is
	// nothing to read again.
	Load func() (Config, error)
	// LogFormat is how cmd/server writes log lines, "text" (or "") or
	// "json"; Open logs through the logger it is given.
	LogFormat string
	// AccessLog is which /fetch/ requests get an access log line:
	// gateway.AccessLogAll (or ""), AccessLogErrors or AccessLogOff.
	// AccessLogSampleHits, above 1, logs one in that many cache hits.
	// AccessLogger receives the lines; nil means the server's logger.
	AccessLog           string
	AccessLogSampleHits int
	AccessLogger        *slog.Logger
}

// The defaults of the client connection timeouts.
const (
	DefaultClientHeaderTimeout = 10 * time.Second
	DefaultClientReadTimeout   = time.Minute
	DefaultClientWriteTimeout  = 30 * time.Second
	DefaultClientIdleTimeout   = 2 * time.Minute
)

// DefaultMaxInflightBytes is the in-flight budget when none is set: an
// eighth of the machine's memory, at most gateway.DefaultMaxInflightBytes
// (512 MiB), which is also what it is when the memory cannot be read.
func DefaultMaxInflightBytes() int64 {
	mem := physicalMemory()
	if mem <= 0 {
		return gateway.DefaultMaxInflightBytes
	}
	return min(mem/8, gateway.DefaultMaxInflightBytes)
}

// physicalMemory reads MemTotal from /proc/meminfo (Linux); 0 when it
// cannot.
func physicalMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
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
	// ReadTimeout ends a response body that sends no byte for this long
	// (0: gateway.DefaultReadTimeout); TotalTimeout ends an exchange,
	// headers and body, this long after it began (0:
	// gateway.DefaultTotalTimeout).
	ReadTimeout  time.Duration
	TotalTimeout time.Duration
	// Policy holds the caching rules.
	Policy cache.Policy
	// RevalidateHeaders are sent with admin revalidations of this
	// upstream's entries, never with /fetch/ traffic: values for request
	// headers stored REDACTED, the credential entries were cached for, or
	// a header the upstream wants (see gateway.Upstream). Secrets: never
	// stored, logged or shown.
	RevalidateHeaders http.Header
	// KeyExpr and FilterExpr are the upstream's compiled key and filter
	// expressions, nil when it has none (see gateway.Upstream).
	KeyExpr    *expr.Key
	FilterExpr *expr.Filter
}

// DefaultUpstreamTimeout bounds an upstream exchange when none is set.
const DefaultUpstreamTimeout = 30 * time.Second
