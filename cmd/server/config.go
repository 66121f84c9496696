package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"gopkg.in/yaml.v3"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/web"
)

// The defaults, lowest in precedence: defaults < YAML file < CACHEGATE_* env < flags.
const (
	defaultListen          = "127.0.0.1:8080"
	defaultBackend         = "sqlite://cachegate.db"
	defaultExpireAfter     = cache.Expiry(time.Hour)
	defaultMode            = cache.ModeRequestsCache
	defaultShutdownTimeout = 15 * time.Second
)

// configError is the error loadConfig returns for anything wrong with the
// flags, the environment or the config file; main exits 2 with it. It names
// where the bad value came from, the setting, and what is accepted:
//
//	config cachegate.yaml:12: upstreams.github.expire_after: bad expiry "1x": want ...
//	flag -upstream: "foo" is not NAME=URL, like github=https://api.github.com
//	env CACHEGATE_LISTEN: bad address "x": want host:port, like 127.0.0.1:8080 or :8080
type configError struct {
	Source string // "flag -listen", "env CACHEGATE_LISTEN", "config FILE"
	Line   int    // line in the config file, when known
	Field  string // path of the setting in the config file, like upstreams.github.url
	Err    error
}

func (e *configError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Field)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *configError) Unwrap() error { return e.Err }

// helpError is what loadConfig returns for -h and -help. It wraps
// flag.ErrHelp, and its message is the usage text, so main can print it and
// exit 0.
type helpError struct{ usage string }

func (e *helpError) Error() string { return e.usage }
func (e *helpError) Unwrap() error { return flag.ErrHelp }

// loadConfig builds the server's configuration from the command-line
// arguments (without the program name), the environment and the optional
// YAML file named by -config or CACHEGATE_CONFIG. Later sources win:
// defaults < file < CACHEGATE_* env < flags. readFile reads the config file
// and the admin token file; it is the only I/O.
//
// Every error is either a *configError (exit 2) or, for -h, an error that
// wraps flag.ErrHelp and whose message is the usage text (exit 0).
func loadConfig(args []string, getenv func(string) string, readFile func(string) ([]byte, error)) (web.Config, error) {
	fs, fv := newFlagSet()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return web.Config{}, &helpError{usage: usage(fs)}
		}
		return web.Config{}, &configError{Source: "flags", Err: fmt.Errorf("%w (run with -h for the list of flags)", err)}
	}
	if fs.NArg() > 0 {
		return web.Config{}, &configError{Source: "arguments", Err: fmt.Errorf("unexpected %q: cachegate takes flags only (run with -h for the list)", fs.Arg(0))}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	l := &loader{
		cfg: web.Config{
			Listen:          defaultListen,
			Backend:         defaultBackend,
			Backends:        map[string]string{},
			ExpireAfter:     defaultExpireAfter,
			ShutdownTimeout: defaultShutdownTimeout,
		},
		mode:     defaultMode,
		readFile: readFile,
	}

	// The file.
	path, pathSource := getenv("CACHEGATE_CONFIG"), "env CACHEGATE_CONFIG"
	if set["config"] {
		path, pathSource = *fv.config, "flag -config"
	}
	if path != "" {
		if err := l.loadFile(path, pathSource); err != nil {
			return web.Config{}, err
		}
	}

	// The environment, then the flags, over the file.
	envs := []struct {
		name  string
		apply func(v string) error
	}{
		{"CACHEGATE_LISTEN", l.setListen},
		{"CACHEGATE_BACKEND", l.setBackend},
		{"CACHEGATE_EXPIRE_AFTER", l.setExpireAfter},
		{"CACHEGATE_MODE", l.setMode},
		{"CACHEGATE_SHUTDOWN_TIMEOUT", l.setShutdownTimeout},
		{"CACHEGATE_DEMO", l.setDemo},
		{"CACHEGATE_FAST_LANE", l.setFastLane},
		{"CACHEGATE_ADMIN_HOSTS", l.setAdminHosts},
		{"CACHEGATE_TRUSTED_PROXIES", l.setTrustedProxies},
		{"CACHEGATE_MAX_INFLIGHT_BYTES", l.setMaxInflight},
		{"CACHEGATE_CLIENT_HEADER_TIMEOUT", setDuration(&l.cfg.ClientHeaderTimeout)},
		{"CACHEGATE_CLIENT_READ_TIMEOUT", setDuration(&l.cfg.ClientReadTimeout)},
		{"CACHEGATE_CLIENT_WRITE_TIMEOUT", setDuration(&l.cfg.ClientWriteTimeout)},
		{"CACHEGATE_CLIENT_IDLE_TIMEOUT", setDuration(&l.cfg.ClientIdleTimeout)},
	}
	for _, e := range envs {
		if v := getenv(e.name); v != "" {
			if err := e.apply(v); err != nil {
				return web.Config{}, &configError{Source: "env " + e.name, Err: err}
			}
			if e.name == "CACHEGATE_DEMO" {
				l.demoSource = "env " + e.name
			}
		}
	}
	if err := l.setToken("env CACHEGATE_ADMIN_TOKEN", getenv("CACHEGATE_ADMIN_TOKEN"),
		"env CACHEGATE_ADMIN_TOKEN_FILE", getenv("CACHEGATE_ADMIN_TOKEN_FILE")); err != nil {
		return web.Config{}, err
	}
	flags := []struct {
		name  string
		value *string
		apply func(v string) error
	}{
		{"listen", fv.listen, l.setListen},
		{"backend", fv.backend, l.setBackend},
		{"expire-after", fv.expireAfter, l.setExpireAfter},
		{"mode", fv.mode, l.setMode},
		{"shutdown-timeout", fv.shutdownTimeout, l.setShutdownTimeout},
		{"admin-hosts", fv.adminHosts, l.setAdminHosts},
		{"trusted-proxies", fv.trustedProxies, l.setTrustedProxies},
		{"max-inflight-bytes", fv.maxInflight, l.setMaxInflight},
		{"client-header-timeout", fv.clientHeader, setDuration(&l.cfg.ClientHeaderTimeout)},
		{"client-read-timeout", fv.clientRead, setDuration(&l.cfg.ClientReadTimeout)},
		{"client-write-timeout", fv.clientWrite, setDuration(&l.cfg.ClientWriteTimeout)},
		{"client-idle-timeout", fv.clientIdle, setDuration(&l.cfg.ClientIdleTimeout)},
	}
	for _, f := range flags {
		if set[f.name] {
			if err := f.apply(*f.value); err != nil {
				return web.Config{}, &configError{Source: "flag -" + f.name, Err: err}
			}
		}
	}
	if set["demo"] {
		l.cfg.Demo, l.demoSource = *fv.demo, "flag -demo"
	}
	if set["fast-lane"] {
		l.cfg.NoFastLane = !*fv.fastLane
	}
	var token, tokenFile string
	if set["admin-token"] {
		token = *fv.adminToken
	}
	if set["admin-token-file"] {
		tokenFile = *fv.adminTokenFile
	}
	if err := l.setToken("flag -admin-token", token, "flag -admin-token-file", tokenFile); err != nil {
		return web.Config{}, err
	}

	// Upstreams, now that the server's expiry and mode are final: the file's,
	// then those of the environment and the flags, which add to them or
	// replace one of the same name.
	if err := l.fileUpstreams(); err != nil {
		return web.Config{}, err
	}
	if v := getenv("CACHEGATE_UPSTREAMS"); v != "" {
		if err := l.addUpstreams("env CACHEGATE_UPSTREAMS", splitList(v)); err != nil {
			return web.Config{}, err
		}
	}
	if err := l.addUpstreams("flag -upstream", fv.upstreams); err != nil {
		return web.Config{}, err
	}
	if l.cfg.Demo {
		for _, u := range l.cfg.Upstreams {
			if u.Name == "demo" {
				return web.Config{}, &configError{Source: l.demoSource, Err: errors.New(`the demo mounts an upstream named "demo", and one is configured already: rename it or drop the demo`)}
			}
		}
	}

	if err := l.readToken(); err != nil {
		return web.Config{}, err
	}
	return l.cfg, nil
}

// flagValues holds what the flags were given; loadConfig applies only the
// flags that were set, so their defaults are there for -h.
type flagValues struct {
	config, listen, backend, expireAfter, mode  *string
	adminToken, adminTokenFile, shutdownTimeout *string
	adminHosts, trustedProxies                  *string
	demo, fastLane                              *bool
	upstreams                                   upstreamFlag
	maxInflight                                 *string
	clientHeader, clientRead                    *string
	clientWrite, clientIdle                     *string
}

func newFlagSet() (*flag.FlagSet, *flagValues) {
	fs := flag.NewFlagSet("cachegate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fv := &flagValues{
		config:          fs.String("config", "", "read settings from the YAML `file` (env CACHEGATE_CONFIG); see cachegate.example.yaml"),
		listen:          fs.String("listen", defaultListen, "serve the gateway and the admin side on `host:port` (env CACHEGATE_LISTEN)"),
		backend:         fs.String("backend", defaultBackend, "the default cache backend, a `DSN`: sqlite://PATH, memory://, file:///DIR, mongodb://HOST/DB (env CACHEGATE_BACKEND)"),
		expireAfter:     fs.String("expire-after", "1h", "default `expiry` of upstreams that set none: a duration (90s, 1h, 1d), seconds, never, do_not_cache or expire_immediately (env CACHEGATE_EXPIRE_AFTER)"),
		mode:            fs.String("mode", string(defaultMode), "default caching `mode` of upstreams: requests-cache or rfc9111 (env CACHEGATE_MODE)"),
		adminToken:      fs.String("admin-token", "", "bearer `token` that guards /api/ and the dashboard; required unless listening on loopback (env CACHEGATE_ADMIN_TOKEN)"),
		adminTokenFile:  fs.String("admin-token-file", "", "read the admin token from `file` (env CACHEGATE_ADMIN_TOKEN_FILE)"),
		adminHosts:      fs.String("admin-hosts", "", "comma-separated host `names` the admin side answers to besides localhost, IP addresses and the listen host, like cache.example.com (env CACHEGATE_ADMIN_HOSTS)"),
		trustedProxies:  fs.String("trusted-proxies", "", "comma-separated reverse proxy `addresses` (IPs or CIDRs) whose X-Forwarded-For the admin side believes (env CACHEGATE_TRUSTED_PROXIES)"),
		shutdownTimeout: fs.String("shutdown-timeout", defaultShutdownTimeout.String(), "how long in-flight requests may take to finish on shutdown, a `duration` (env CACHEGATE_SHUTDOWN_TIMEOUT)"),
		demo:            fs.Bool("demo", false, `mount an in-process httpbin as the upstream "demo" (env CACHEGATE_DEMO)`),
		fastLane:        fs.Bool("fast-lane", true, "answer cache hits held in memory before net/http parses them; -fast-lane=false sends every request through net/http (env CACHEGATE_FAST_LANE)"),
		maxInflight:     fs.String("max-inflight-bytes", "", "bound the response bodies held in memory until stored to this `size` (64MiB, 1GiB); a miss beyond it streams unstored; default an eighth of memory, at most 512MiB (env CACHEGATE_MAX_INFLIGHT_BYTES)"),
		clientHeader:    fs.String("client-header-timeout", web.DefaultClientHeaderTimeout.String(), "bound reading a request's head to this `duration` (env CACHEGATE_CLIENT_HEADER_TIMEOUT)"),
		clientRead:      fs.String("client-read-timeout", web.DefaultClientReadTimeout.String(), "bound reading a whole request, body included, to this `duration` (env CACHEGATE_CLIENT_READ_TIMEOUT)"),
		clientWrite:     fs.String("client-write-timeout", web.DefaultClientWriteTimeout.String(), "cut a streamed answer when one write to the client makes no progress for this `duration` (env CACHEGATE_CLIENT_WRITE_TIMEOUT)"),
		clientIdle:      fs.String("client-idle-timeout", web.DefaultClientIdleTimeout.String(), "close a kept-alive client connection idle for this `duration` (env CACHEGATE_CLIENT_IDLE_TIMEOUT)"),
	}
	fs.Var(&fv.upstreams, "upstream", "add the upstream `NAME=URL`, reached at /fetch/NAME/; repeatable, replaces one of the same name from the file (env CACHEGATE_UPSTREAMS=name=url,name=url)")
	return fs, fv
}

// usage is the text of -h.
func usage(fs *flag.FlagSet) string {
	var b bytes.Buffer
	b.WriteString(`Usage: cachegate [flags]

cachegate is a caching HTTP gateway: GET /fetch/NAME/PATH answers from the
cache or from the upstream NAME.

Settings come from defaults, then the YAML file of -config, then CACHEGATE_*
environment variables, then flags; later ones win.

Flags:
`)
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	return b.String()
}

// upstreamFlag collects repeated -upstream NAME=URL flags.
type upstreamFlag []string

func (f *upstreamFlag) String() string { return strings.Join(*f, ",") }

func (f *upstreamFlag) Set(s string) error {
	*f = append(*f, s)
	return nil
}

// loader builds a web.Config from one source after another.
type loader struct {
	cfg        web.Config
	mode       cache.Mode // default mode of upstreams
	demoSource string     // where Demo was set, for errors
	token      secret
	readFile   func(string) ([]byte, error)

	file      string     // config file path, for errors
	upstreams *yaml.Node // the file's upstreams mapping, decoded last
}

// secret is a value given directly or as a file to read, and where it came
// from.
type secret struct {
	value, file, source string
}

func (l *loader) setListen(v string) error {
	if err := checkListen(v); err != nil {
		return err
	}
	l.cfg.Listen = v
	return nil
}

func (l *loader) setBackend(v string) error {
	if err := checkDSN(v); err != nil {
		return err
	}
	l.cfg.Backend = v
	return nil
}

func (l *loader) setExpireAfter(v string) error {
	e, err := cache.ParseExpiry(v)
	if err != nil {
		return err
	}
	l.cfg.ExpireAfter = e
	return nil
}

func (l *loader) setMode(v string) error {
	m, err := parseMode(v)
	if err != nil {
		return err
	}
	l.mode = m
	return nil
}

func (l *loader) setShutdownTimeout(v string) error {
	d, err := parseDuration(v)
	if err != nil {
		return err
	}
	l.cfg.ShutdownTimeout = d
	return nil
}

func (l *loader) setAdminHosts(v string) error {
	hosts, err := parseAdminHosts(splitList(v))
	l.cfg.AdminHosts = hosts
	return err
}

func (l *loader) setTrustedProxies(v string) error {
	p, err := parseProxies(splitList(v))
	l.cfg.TrustedProxies = p
	return err
}

// setDuration returns the setter of a timeout: a Go duration, "1d", or
// plain seconds; 0 means the default.
func setDuration(dst *time.Duration) func(string) error {
	return func(v string) error {
		d, err := parseDuration(v)
		if err != nil {
			return err
		}
		*dst = d
		return nil
	}
}

func (l *loader) setMaxInflight(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	l.cfg.MaxInflightBytes = n
	return nil
}

func (l *loader) setDemo(v string) (err error) {
	l.cfg.Demo, err = parseBool(v)
	return err
}

func (l *loader) setFastLane(v string) error {
	on, err := parseBool(v)
	l.cfg.NoFastLane = !on
	return err
}

// parseBool reads a boolean setting from the environment.
func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("bad value %q: want true or false", v)
	}
	return b, nil
}

// setToken applies one source's admin token, given directly or as a file;
// a source may not give both.
func (l *loader) setToken(valueSource, value, fileSource, file string) error {
	switch {
	case value != "" && file != "":
		return &configError{Source: valueSource, Err: fmt.Errorf("set together with %s: give the token or a file holding it, not both", fileSource)}
	case value != "":
		l.token = secret{value: value, source: valueSource}
	case file != "":
		l.token = secret{file: file, source: fileSource}
	}
	return nil
}

// readToken reads the admin token's file, if it was given as one, like
// miniflux's *_FILE settings: surrounding white space is dropped.
func (l *loader) readToken() error {
	if l.token.file == "" {
		l.cfg.AdminToken = l.token.value
		return nil
	}
	b, err := l.readFile(l.token.file)
	if err != nil {
		return &configError{Source: l.token.source, Err: fmt.Errorf("read the admin token: %w", err)}
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return &configError{Source: l.token.source, Err: fmt.Errorf("%s is empty: want a file holding the admin token", l.token.file)}
	}
	l.cfg.AdminToken = tok
	return nil
}

// addUpstreams adds NAME=URL upstreams with the server's default policy,
// replacing any of the same name.
func (l *loader) addUpstreams(source string, list []string) error {
	seen := map[string]bool{}
	for _, item := range list {
		name, rawURL, ok := strings.Cut(item, "=")
		name, rawURL = strings.TrimSpace(name), strings.TrimSpace(rawURL)
		if !ok || name == "" || rawURL == "" {
			return &configError{Source: source, Err: fmt.Errorf("%q is not NAME=URL, like github=https://api.github.com", item)}
		}
		if err := checkName("upstream", name); err != nil {
			return &configError{Source: source, Err: err}
		}
		if seen[name] {
			return &configError{Source: source, Err: fmt.Errorf("upstream %q given twice", name)}
		}
		seen[name] = true
		if err := checkUpstreamURL(rawURL); err != nil {
			return &configError{Source: source, Err: fmt.Errorf("upstream %q: %w", name, err)}
		}
		u := web.UpstreamConfig{Name: name, URL: rawURL, Policy: l.defaultPolicy()}
		if err := u.Policy.Validate(); err != nil {
			return &configError{Source: source, Err: fmt.Errorf("upstream %q: %w", name, err)}
		}
		l.putUpstream(u)
	}
	return nil
}

// putUpstream adds u, or replaces the upstream of the same name in place.
func (l *loader) putUpstream(u web.UpstreamConfig) {
	for i := range l.cfg.Upstreams {
		if l.cfg.Upstreams[i].Name == u.Name {
			l.cfg.Upstreams[i] = u
			return
		}
	}
	l.cfg.Upstreams = append(l.cfg.Upstreams, u)
}

func (l *loader) defaultPolicy() cache.Policy {
	p := cache.DefaultPolicy(l.cfg.ExpireAfter)
	p.Mode = l.mode
	return p
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

// The file.

// loadFile reads the YAML file and applies its server settings; its
// upstreams wait for fileUpstreams.
func (l *loader) loadFile(path, pathSource string) error {
	b, err := l.readFile(path)
	if err != nil {
		return &configError{Source: pathSource, Err: fmt.Errorf("read the config file: %w", err)}
	}
	l.file = path
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return l.fileError(err)
	}
	if doc.Kind == 0 { // an empty file
		return nil
	}
	root := doc.Content[0]
	var token, tokenFile string
	var tokenLine int
	str := func(set func(string) error) decodeFunc {
		return func(_ string, n *yaml.Node) error {
			var s string
			if err := decodeValue(n, &s, "a string"); err != nil {
				return err
			}
			return set(s)
		}
	}
	err = decodeMap("", root, []field{
		{"listen", str(l.setListen)},
		{"backend", str(l.setBackend)},
		{"backends", l.decodeBackends},
		{"expire_after", value(&l.cfg.ExpireAfter, expiryWant)},
		{"mode", str(l.setMode)},
		{"admin_token", func(_ string, n *yaml.Node) error {
			tokenLine = n.Line
			return decodeValue(n, &token, "a string")
		}},
		{"admin_token_file", func(_ string, n *yaml.Node) error {
			return decodeValue(n, &tokenFile, "a file name")
		}},
		{"demo", func(_ string, n *yaml.Node) error {
			l.demoSource = "config " + l.file + ": demo"
			return decodeValue(n, &l.cfg.Demo, "true or false")
		}},
		{"shutdown_timeout", duration(&l.cfg.ShutdownTimeout)},
		{"admin_hosts", func(_ string, n *yaml.Node) error {
			var list []string
			if err := decodeValue(n, &list, "a list of host names, like [cache.example.com]"); err != nil {
				return err
			}
			hosts, err := parseAdminHosts(list)
			l.cfg.AdminHosts = hosts
			return err
		}},
		{"trusted_proxies", func(_ string, n *yaml.Node) error {
			var list []string
			if err := decodeValue(n, &list, "a list of IP addresses or CIDRs, like [127.0.0.1, 10.0.0.0/8]"); err != nil {
				return err
			}
			p, err := parseProxies(list)
			l.cfg.TrustedProxies = p
			return err
		}},
		{"max_inflight_bytes", func(_ string, n *yaml.Node) error {
			return decodeSize(n, &l.cfg.MaxInflightBytes)
		}},
		{"client_header_timeout", duration(&l.cfg.ClientHeaderTimeout)},
		{"client_read_timeout", duration(&l.cfg.ClientReadTimeout)},
		{"client_write_timeout", duration(&l.cfg.ClientWriteTimeout)},
		{"client_idle_timeout", duration(&l.cfg.ClientIdleTimeout)},
		{"fast_lane", func(_ string, n *yaml.Node) error {
			var on bool
			if err := decodeValue(n, &on, "true or false"); err != nil {
				return err
			}
			l.cfg.NoFastLane = !on
			return nil
		}},
		{"upstreams", func(_ string, n *yaml.Node) error {
			l.upstreams = n
			return nil
		}},
	})
	if err != nil {
		return l.fileError(err)
	}
	if token != "" && tokenFile != "" {
		return l.fileError(&configError{Line: tokenLine, Field: "admin_token", Err: errors.New("set together with admin_token_file: give the token or a file holding it, not both")})
	}
	if token != "" {
		l.token = secret{value: token, source: "config " + l.file + ": admin_token"}
	} else if tokenFile != "" {
		l.token = secret{file: tokenFile, source: "config " + l.file + ": admin_token_file"}
	}
	return nil
}

// fileError gives err the config file as its source.
func (l *loader) fileError(err error) error {
	var ce *configError
	if errors.As(err, &ce) {
		ce.Source = "config " + l.file
		return ce
	}
	return &configError{Source: "config " + l.file, Err: err}
}

func (l *loader) decodeBackends(path string, n *yaml.Node) error {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("bad value %s: want a mapping of backend names to DSNs", describe(n))
	}
	return eachKey(path, n, func(path, name string, k, v *yaml.Node) error {
		if name == "default" {
			return errors.New(`"default" names the -backend backend: choose another name`)
		}
		if err := checkName("backend", name); err != nil {
			return err
		}
		var dsn string
		if err := decodeValue(v, &dsn, "a backend DSN"); err != nil {
			return err
		}
		if err := checkDSN(dsn); err != nil {
			return err
		}
		l.cfg.Backends[name] = dsn
		return nil
	})
}

// fileUpstreams decodes the file's upstreams, in the file's order, each
// from the server's default policy.
func (l *loader) fileUpstreams() error {
	n := resolve(l.upstreams)
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return l.fileError(&configError{Line: n.Line, Field: "upstreams", Err: fmt.Errorf("bad value %s: want a mapping of upstream names to settings", describe(n))})
	}
	err := eachKey("upstreams", n, func(path, name string, k, v *yaml.Node) error {
		if err := checkName("upstream", name); err != nil {
			return err
		}
		u, err := l.decodeUpstream(path, name, k, v)
		if err != nil {
			return err
		}
		l.cfg.Upstreams = append(l.cfg.Upstreams, u)
		return nil
	})
	if err != nil {
		return l.fileError(err)
	}
	return nil
}

func (l *loader) decodeUpstream(path, name string, k, n *yaml.Node) (web.UpstreamConfig, error) {
	u := web.UpstreamConfig{Name: name, Policy: l.defaultPolicy()}
	p := &u.Policy
	var urlLine int
	err := decodeMap(path, n, []field{
		{"url", func(_ string, n *yaml.Node) error {
			urlLine = n.Line
			if err := decodeValue(n, &u.URL, "an absolute http or https URL"); err != nil {
				return err
			}
			return checkUpstreamURL(u.URL)
		}},
		{"backend", func(_ string, n *yaml.Node) error {
			if err := decodeValue(n, &u.Backend, "a backend name"); err != nil {
				return err
			}
			if u.Backend == "default" {
				u.Backend = ""
			}
			if _, ok := l.cfg.Backends[u.Backend]; !ok && u.Backend != "" {
				return fmt.Errorf("unknown backend %q: want default or one of backends (%s)", u.Backend, strings.Join(sortedKeys(l.cfg.Backends), ", "))
			}
			return nil
		}},
		{"mode", func(_ string, n *yaml.Node) error {
			var s string
			if err := decodeValue(n, &s, modeWant); err != nil {
				return err
			}
			m, err := parseMode(s)
			p.Mode = m
			return err
		}},
		{"timeout", duration(&u.Timeout)},
		{"read_timeout", duration(&u.ReadTimeout)},
		{"total_timeout", duration(&u.TotalTimeout)},
		{"expire_after", value(&p.ExpireAfter, expiryWant)},
		{"urls_expire_after", func(path string, n *yaml.Node) error {
			rules, err := decodeURLRules(path, n)
			p.URLsExpireAfter = rules
			return err
		}},
		{"cache_control", value(&p.CacheControl, "true or false")},
		{"stale_if_error", value(&p.StaleIfError, stalenessWant)},
		{"stale_while_revalidate", value(&p.StaleWhileRevalidate, stalenessWant)},
		{"always_revalidate", value(&p.AlwaysRevalidate, "true or false")},
		{"allowable_codes", value(&p.AllowableCodes, "a list of HTTP status codes, like [200, 203, 301]")},
		{"allowable_methods", value(&p.AllowableMethods, "a list of HTTP methods, like [GET, HEAD]")},
		{"ignored_parameters", value(&p.IgnoredParameters, "a list of parameter or header names, like [access_token]")},
		{"share_credentialed_responses", value(&p.ShareCredentialedResponses, "true or false")},
		{"private_cache", value(&p.PrivateCache, "true or false")},
		{"client_overrides", value(&p.ClientOverrides, "true or false")},
		{"match_headers", func(_ string, n *yaml.Node) error {
			return decodeMatchHeaders(n, p)
		}},
		{"max_body_size", func(_ string, n *yaml.Node) error {
			return decodeSize(n, &p.MaxBodySize)
		}},
		{"content_types", value(&p.ContentTypes, "a list of media types or prefixes ending in / or *, like [application/json, text/]")},
		{"exclude_content_types", value(&p.ExcludeContentTypes, "a list of media types or prefixes ending in / or *, like [image/]")},
		{"revalidate_headers", func(path string, n *yaml.Node) error {
			h, err := decodeRevalidateHeaders(path, n)
			u.RevalidateHeaders = h
			return err
		}},
		{"key", func(path string, n *yaml.Node) error {
			return decodeMap(path, n, []field{
				{"ignore_query", value(&p.Key.IgnoreQuery, "true or false")},
				{"ignore_body", value(&p.Key.IgnoreBody, "true or false")},
				{"ignore_headers", value(&p.Key.IgnoreHeaders, "true or false")},
			})
		}},
	})
	if err != nil {
		return u, err
	}
	if u.URL == "" {
		line := urlLine
		if line == 0 {
			line = k.Line
		}
		return u, &configError{Line: line, Field: path + ".url", Err: errors.New("missing: want an absolute http or https URL, like https://api.github.com")}
	}
	if err := p.Validate(); err != nil {
		// Validate's errors start with the setting's name.
		ce := &configError{Line: k.Line, Field: path, Err: err}
		if setting, rest, ok := strings.Cut(err.Error(), ": "); ok {
			ce.Field, ce.Err = path+"."+setting, errors.New(rest)
			if v := lookup(n, setting); v != nil {
				ce.Line = v.Line
			}
		}
		return u, ce
	}
	return u, nil
}

// decodeURLRules keeps the order of the urls_expire_after mapping: the
// first matching pattern wins.
func decodeURLRules(path string, n *yaml.Node) ([]cache.URLRule, error) {
	n = resolve(n)
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("bad value %s: want a mapping of URL patterns to expiries, first match wins", describe(n))
	}
	var rules []cache.URLRule
	err := eachKey(path, n, func(path, pattern string, k, v *yaml.Node) error {
		if pattern == "" {
			return errors.New("empty pattern: want a glob like /repos/*/releases* or api.github.com/rate_limit")
		}
		r := cache.URLRule{Pattern: pattern}
		if err := decodeValue(v, &r.Expire, expiryWant); err != nil {
			return err
		}
		rules = append(rules, r)
		return nil
	})
	return rules, err
}

// decodeMatchHeaders reads a list of header names, or true for all headers.
func decodeMatchHeaders(n *yaml.Node, p *cache.Policy) error {
	const want = "a list of header names, like [Accept-Language], or true for all headers"
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		var all bool
		if err := decodeValue(n, &all, want); err != nil {
			return err
		}
		p.MatchAllHeaders, p.MatchHeaders = all, nil
		return nil
	}
	p.MatchAllHeaders = false
	return decodeValue(n, &p.MatchHeaders, want)
}

// decodeRevalidateHeaders reads the mapping of header names to literal
// values that admin revalidations of an upstream send. The values are
// secrets (an API key, a bearer token): no error quotes them.
func decodeRevalidateHeaders(path string, n *yaml.Node) (http.Header, error) {
	n = resolve(n)
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, errors.New(`want a mapping of header names to values, like {Authorization: "Bearer ..."} (the value given is not shown: it may be a secret)`)
	}
	h := http.Header{}
	err := eachKey(path, n, func(_, name string, _, v *yaml.Node) error {
		if err := checkRevalidateHeader(name); err != nil {
			return err
		}
		v = resolve(v)
		if v.Kind != yaml.ScalarNode || isNull(v) || v.Value == "" {
			return errors.New("want the header's value as a non-empty string (not shown here: it may be a secret)")
		}
		if strings.ContainsAny(v.Value, "\r\n\x00") {
			return errors.New("the value holds a line break or NUL, which no header value may (not shown here: it may be a secret)")
		}
		canonical := http.CanonicalHeaderKey(name)
		if _, dup := h[canonical]; dup {
			return fmt.Errorf("header %s given twice (header names ignore case)", canonical)
		}
		h[canonical] = []string{v.Value}
		return nil
	})
	return h, err
}

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

// parseSize reads a byte count, plain or human ("10MiB", "512 kB"), more
// than zero.
func parseSize(s string) (int64, error) {
	const want = "a size in bytes, like 1048576, 10MiB or 512kB"
	v, err := humanize.ParseBytes(s)
	if err != nil || v > math.MaxInt64 || v == 0 {
		return 0, fmt.Errorf("bad size %q: want %s", s, want)
	}
	return int64(v), nil
}

// decodeSize reads a byte count, plain or human ("10MiB", "512 kB").
func decodeSize(n *yaml.Node, dst *int64) error {
	const want = "a size in bytes, like 1048576, 10MiB or 512kB"
	var s string
	if err := decodeValue(n, &s, want); err != nil {
		return err
	}
	v, err := humanize.ParseBytes(s)
	if err != nil || v > math.MaxInt64 {
		return fmt.Errorf("bad size %q: want %s", s, want)
	}
	*dst = int64(v)
	return nil
}

const (
	expiryWant    = "a duration like 90s, 10m, 1h or 1d, seconds, never, do_not_cache or expire_immediately"
	stalenessWant = "true, false or a maximum staleness like 10m or 1d"
	modeWant      = "requests-cache or rfc9111"
)

// YAML decoding with paths: the file is walked node by node so that an
// unknown key, or a bad value, is reported with its full path and line.
// (yaml.v3's KnownFields does not reach through yaml.Node, which the
// ordered urls_expire_after and upstreams need.)

// decodeFunc decodes the value node n of the setting at path.
type decodeFunc func(path string, n *yaml.Node) error

// field is a key of a mapping and how to decode its value.
type field struct {
	key    string
	decode decodeFunc
}

// decodeMap decodes the mapping n by fields, rejecting unknown and repeated
// keys. Merge keys (<<: *anchor) are applied first, so explicit keys win.
func decodeMap(path string, n *yaml.Node, fields []field) error {
	n = resolve(n)
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return &configError{Line: n.Line, Field: path, Err: fmt.Errorf("bad value %s: want a mapping with the keys %s", describe(n), keyList(fields))}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], n.Content[i+1]; k.Tag == "!!merge" {
			if err := decodeMerge(path, v, fields); err != nil {
				return err
			}
		}
	}
	return eachKey(path, n, func(p, key string, k, v *yaml.Node) error {
		i := slices.IndexFunc(fields, func(f field) bool { return f.key == key })
		if i < 0 {
			return fmt.Errorf("unknown setting: want one of %s", keyList(fields))
		}
		return fields[i].decode(p, v)
	})
}

func decodeMerge(path string, v *yaml.Node, fields []field) error {
	v = resolve(v)
	if v.Kind == yaml.SequenceNode {
		// Earlier mappings of the list win.
		for i := len(v.Content) - 1; i >= 0; i-- {
			if err := decodeMap(path, v.Content[i], fields); err != nil {
				return err
			}
		}
		return nil
	}
	return decodeMap(path, v, fields)
}

// eachKey calls fn for each key of the mapping n but merge keys, with the
// key's path, and gives fn's errors that path and the key's line.
func eachKey(path string, n *yaml.Node, fn func(path, key string, k, v *yaml.Node) error) error {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" {
			continue
		}
		p := joinPath(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			return &configError{Line: k.Line, Field: path, Err: errors.New("a key is not a plain string")}
		}
		if line, dup := seen[k.Value]; dup {
			return &configError{Line: k.Line, Field: p, Err: fmt.Errorf("set twice (first on line %d)", line)}
		}
		seen[k.Value] = k.Line
		if err := fn(p, k.Value, k, v); err != nil {
			var ce *configError
			if errors.As(err, &ce) {
				return err
			}
			line := v.Line
			if isNull(v) || line == 0 {
				line = k.Line
			}
			return &configError{Line: line, Field: p, Err: err}
		}
	}
	return nil
}

// joinPath appends key to path: upstreams.github, or
// urls_expire_after["/repos/*"] for a key that is not a plain word.
func joinPath(path, key string) string {
	plain := key != "" && strings.IndexFunc(key, func(r rune) bool { return !isNameRune(r) }) < 0
	switch {
	case !plain:
		return path + "[" + strconv.Quote(key) + "]"
	case path == "":
		return key
	}
	return path + "." + key
}

// value decodes a setting into dst with yaml.v3, saying what is wanted when
// the value has the wrong type.
func value(dst any, want string) decodeFunc {
	return func(_ string, n *yaml.Node) error { return decodeValue(n, dst, want) }
}

func decodeValue(n *yaml.Node, dst any, want string) error {
	n = resolve(n)
	if isNull(n) {
		// An empty list is fine; an empty scalar would silently become
		// zero (expire_immediately, false), so it is refused.
		if rv := reflect.ValueOf(dst).Elem(); rv.Kind() == reflect.Slice {
			rv.SetZero()
			return nil
		}
		return fmt.Errorf("no value: want %s", want)
	}
	if n.Kind != yaml.ScalarNode && reflect.ValueOf(dst).Elem().Kind() != reflect.Slice {
		return fmt.Errorf("bad value %s: want %s", describe(n), want)
	}
	if err := n.Decode(dst); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return fmt.Errorf("bad value %s: want %s", describe(n), want)
		}
		return err
	}
	return nil
}

// duration decodes a duration ("10s", "1m30s", seconds).
func duration(dst *time.Duration) decodeFunc {
	return func(_ string, n *yaml.Node) error {
		var s string
		if err := decodeValue(n, &s, durationWant); err != nil {
			return err
		}
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		*dst = d
		return nil
	}
}

// lookup returns the value of key in the mapping n, or nil.
func lookup(n *yaml.Node, key string) *yaml.Node {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe renders a value for an error message.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	case yaml.SequenceNode:
		items := make([]string, len(n.Content))
		for i, c := range n.Content {
			items[i] = describe(resolve(c))
		}
		return "[" + strings.Join(items, ", ") + "]"
	case yaml.MappingNode:
		return "(a mapping)"
	}
	return "(unknown)"
}

func keyList(fields []field) string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return strings.Join(keys, ", ")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Checks shared by every source.

const durationWant = "a duration like 10s, 1m30s or 2h, or seconds"

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
