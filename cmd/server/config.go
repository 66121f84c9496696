package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
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
// arguments (without the program name), the CACHEGATE_* environment and
// the optional YAML file named by -config or CACHEGATE_CONFIG. Later
// sources win: defaults < file < CACHEGATE_* env < flags. readFile reads
// the config file and the admin token file; it is the only I/O.
//
// Every error is either a *configError (exit 2) or, for -h, an error that
// wraps flag.ErrHelp and whose message is the usage text (exit 0).
func loadConfig(args []string, readFile func(string) ([]byte, error)) (web.Config, error) {
	var given []givenValue
	fromEnv := false
	fs := flag.NewFlagSet("cachegate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for _, s := range settings {
		fs.Var(&flagValue{name: s.flag, def: s.def, isBool: s.isBool, given: &given, fromEnv: &fromEnv}, s.flag, s.usage)
	}
	// The command line is parsed here, not by ff, so that each value knows
	// whether it came from a flag; ff then sets every flag not given from
	// its CACHEGATE_ variable.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return web.Config{}, &helpError{usage: usage(fs)}
		}
		return web.Config{}, &configError{Source: "flags", Err: fmt.Errorf("%w (run with -h for the list of flags)", err)}
	}
	if fs.NArg() > 0 {
		return web.Config{}, &configError{Source: "arguments", Err: fmt.Errorf("unexpected %q: cachegate takes flags only (run with -h for the list)", fs.Arg(0))}
	}
	fromEnv = true
	if err := ff.Parse(fs, nil, ff.WithEnvVarPrefix(envPrefix)); err != nil {
		return web.Config{}, &configError{Source: "env", Err: err}
	}

	cfg := fileConfig{
		Listen:          defaultListen,
		Backend:         defaultBackend,
		ExpireAfter:     expiry(defaultExpireAfter),
		Mode:            mode(defaultMode),
		ShutdownTimeout: duration(defaultShutdownTimeout),
		FastLane:        true,
	}
	file := &configFile{}
	// The last -config wins; -config "" reads no file, even with
	// CACHEGATE_CONFIG set.
	if i := lastIndex(given, "config"); i >= 0 && given[i].value != "" {
		b, err := readFile(given[i].value)
		if err != nil {
			return web.Config{}, &configError{Source: given[i].source(), Err: fmt.Errorf("read the config file: %w", err)}
		}
		if file, err = decodeFile(given[i].value, b, &cfg); err != nil {
			return web.Config{}, err
		}
	}
	demoSource := "config " + file.name + ": demo"
	var token secret
	switch {
	case cfg.AdminToken != "" && cfg.AdminTokenFile != "":
		return web.Config{}, file.errorf(file.line("admin_token"), "admin_token", errors.New("set together with admin_token_file: give the token or a file holding it, not both"))
	case cfg.AdminToken != "":
		token = secret{value: string(cfg.AdminToken), source: "config " + file.name + ": admin_token"}
	case cfg.AdminTokenFile != "":
		token = secret{file: string(cfg.AdminTokenFile), source: "config " + file.name + ": admin_token_file"}
	}

	// The environment, then the flags, over the file.
	upstreams := map[bool][]givenValue{}
	if v := os.Getenv(envPrefix + "_UPSTREAMS"); v != "" {
		upstreams[true] = append(upstreams[true], givenValue{name: "upstreams", value: v, fromEnv: true})
	}
	for _, env := range []bool{true, false} {
		var tokenValue, tokenFile *givenValue
		for _, g := range given {
			if g.fromEnv != env {
				continue
			}
			switch g.name {
			case "config":
			case "upstream":
				upstreams[env] = append(upstreams[env], g)
			case "admin-token":
				tokenValue = &g
			case "admin-token-file":
				tokenFile = &g
			default:
				i := slices.IndexFunc(settings, func(s setting) bool { return s.flag == g.name })
				if err := settings[i].field(&cfg).Set(g.value); err != nil {
					return web.Config{}, &configError{Source: g.source(), Err: err}
				}
				if g.name == "demo" {
					demoSource = g.source()
				}
			}
		}
		switch {
		case tokenValue != nil && tokenFile != nil:
			return web.Config{}, &configError{Source: tokenValue.source(), Err: fmt.Errorf("set together with %s: give the token or a file holding it, not both", tokenFile.source())}
		case tokenValue != nil:
			token = secret{value: tokenValue.value, source: tokenValue.source()}
		case tokenFile != nil:
			token = secret{file: tokenFile.value, source: tokenFile.source()}
		}
	}

	c := web.Config{
		Listen:              string(cfg.Listen),
		MetricsListen:       string(cfg.MetricsListen),
		Backend:             string(cfg.Backend),
		Backends:            map[string]string(cfg.Backends),
		ExpireAfter:         cache.Expiry(cfg.ExpireAfter),
		AdminHosts:          cfg.AdminHosts,
		TrustedProxies:      cfg.TrustedProxies,
		Demo:                bool(cfg.Demo),
		NoFastLane:          !bool(cfg.FastLane),
		ShutdownTimeout:     time.Duration(cfg.ShutdownTimeout),
		MaxInflightBytes:    int64(cfg.MaxInflightBytes),
		ClientHeaderTimeout: time.Duration(cfg.ClientHeaderTimeout),
		ClientReadTimeout:   time.Duration(cfg.ClientReadTimeout),
		ClientWriteTimeout:  time.Duration(cfg.ClientWriteTimeout),
		ClientIdleTimeout:   time.Duration(cfg.ClientIdleTimeout),
		LogFormat:           string(cfg.LogFormat),
		AccessLog:           string(cfg.AccessLog),
		AccessLogSampleHits: int(cfg.AccessLogSampleHits),
	}
	if c.Backends == nil {
		c.Backends = map[string]string{}
	}

	// Upstreams, now that the server's expiry and mode are final: the
	// file's, then those of the environment and the flags, which add to
	// them or replace one of the same name.
	def := cache.DefaultPolicy(c.ExpireAfter)
	def.Mode = cache.Mode(cfg.Mode)
	var err error
	if c.Upstreams, err = file.upstreams(cfg.Upstreams, c.Backends, def); err != nil {
		return web.Config{}, err
	}
	for _, env := range []bool{true, false} {
		if err := addUpstreams(&c, upstreams[env], def); err != nil {
			return web.Config{}, err
		}
	}
	if c.Demo && slices.ContainsFunc(c.Upstreams, func(u web.UpstreamConfig) bool { return u.Name == "demo" }) {
		return web.Config{}, &configError{Source: demoSource, Err: errors.New(`the demo mounts an upstream named "demo", and one is configured already: rename it or drop the demo`)}
	}
	if c.AdminToken, err = token.read(readFile); err != nil {
		return web.Config{}, err
	}
	return c, nil
}

// lastIndex returns the index of the last value given to the flag name,
// or -1.
func lastIndex(given []givenValue, name string) int {
	for i := len(given) - 1; i >= 0; i-- {
		if given[i].name == name {
			return i
		}
	}
	return -1
}

// envPrefix names the environment variables: -client-idle-timeout is
// CACHEGATE_CLIENT_IDLE_TIMEOUT, as ff.WithEnvVarPrefix maps them.
const envPrefix = "CACHEGATE"

// setting is a flag, also read from its CACHEGATE_ variable. It sets the
// setting of the file of the same name (-expire-after, expire_after), but
// for -config, -upstream and the token, which loadConfig applies by hand.
type setting struct {
	flag, def string
	isBool    bool
	usage     string
}

// field returns the field of c that the flag sets.
func (s setting) field(c *fileConfig) interface{ Set(string) error } {
	v := reflect.ValueOf(c).Elem()
	key := strings.ReplaceAll(s.flag, "-", "_")
	for i := range v.NumField() {
		if v.Type().Field(i).Tag.Get("yaml") == key {
			return v.Field(i).Addr().Interface().(interface{ Set(string) error })
		}
	}
	panic("no setting " + key + " in the file for the flag -" + s.flag)
}

var settings = []setting{
	{"config", "", false, "read settings from the YAML `file` (env CACHEGATE_CONFIG); see cachegate.example.yaml"},
	{"listen", defaultListen, false, "serve the gateway and the admin side on `host:port` (env CACHEGATE_LISTEN)"},
	{"metrics-listen", "", false, "also serve /metrics on `host:port`, without the admin token, for a Prometheus scraper; nothing else answers there (env CACHEGATE_METRICS_LISTEN)"},
	{"backend", defaultBackend, false, "the default cache backend, a `DSN`: sqlite://PATH, memory://, file:///DIR, mongodb://HOST/DB (env CACHEGATE_BACKEND)"},
	{"expire-after", "1h", false, "default `expiry` of upstreams that set none: a duration (90s, 1h, 1d), seconds, never, do_not_cache or expire_immediately (env CACHEGATE_EXPIRE_AFTER)"},
	{"mode", string(defaultMode), false, "default caching `mode` of upstreams: requests-cache or rfc9111 (env CACHEGATE_MODE)"},
	{"admin-token", "", false, "bearer `token` that guards /api/ and the dashboard; required unless listening on loopback (env CACHEGATE_ADMIN_TOKEN)"},
	{"admin-token-file", "", false, "read the admin token from `file` (env CACHEGATE_ADMIN_TOKEN_FILE)"},
	{"admin-hosts", "", false, "comma-separated host `names` the admin side answers to besides localhost, IP addresses and the listen host, like cache.example.com (env CACHEGATE_ADMIN_HOSTS)"},
	{"trusted-proxies", "", false, "comma-separated reverse proxy `addresses` (IPs or CIDRs) whose X-Forwarded-For the admin side believes (env CACHEGATE_TRUSTED_PROXIES)"},
	{"shutdown-timeout", defaultShutdownTimeout.String(), false, "how long in-flight requests may take to finish on shutdown, a `duration` (env CACHEGATE_SHUTDOWN_TIMEOUT)"},
	{"demo", "", true, `mount an in-process httpbin as the upstream "demo" (env CACHEGATE_DEMO)`},
	{"fast-lane", "true", true, "answer cache hits held in memory before net/http parses them; -fast-lane=false sends every request through net/http (env CACHEGATE_FAST_LANE)"},
	{"max-inflight-bytes", "", false, "bound the response bodies held in memory until stored to this `size` (64MiB, 1GiB); a miss beyond it streams unstored; default an eighth of memory, at most 512MiB (env CACHEGATE_MAX_INFLIGHT_BYTES)"},
	{"client-header-timeout", web.DefaultClientHeaderTimeout.String(), false, "bound reading a request's head to this `duration` (env CACHEGATE_CLIENT_HEADER_TIMEOUT)"},
	{"client-read-timeout", web.DefaultClientReadTimeout.String(), false, "bound reading a whole request, body included, to this `duration` (env CACHEGATE_CLIENT_READ_TIMEOUT)"},
	{"client-write-timeout", web.DefaultClientWriteTimeout.String(), false, "cut a streamed answer when one write to the client makes no progress for this `duration` (env CACHEGATE_CLIENT_WRITE_TIMEOUT)"},
	{"client-idle-timeout", web.DefaultClientIdleTimeout.String(), false, "close a kept-alive client connection idle for this `duration` (env CACHEGATE_CLIENT_IDLE_TIMEOUT)"},
	{"log-format", "text", false, "write log lines, the access log's included, as `text` (key=value) or json (env CACHEGATE_LOG_FORMAT)"},
	{"access-log", gateway.AccessLogAll, false, "which /fetch/ requests get an access log line: `all`, errors (X-Cache ERROR or a 5xx) or off (env CACHEGATE_ACCESS_LOG)"},
	{"access-log-sample-hits", "0", false, "log one in `N` cache hits (HIT); misses, stale answers and errors are always logged; 0 and 1 log every hit (env CACHEGATE_ACCESS_LOG_SAMPLE_HITS)"},
	{"upstream", "", false, "add the upstream `NAME=URL`, reached at /fetch/NAME/; repeatable, replaces one of the same name from the file (env CACHEGATE_UPSTREAMS=name=url,name=url)"},
}

// flagValue is the flag.Value of every setting: it records what it was
// given, and where, for loadConfig to apply over the file.
type flagValue struct {
	name, def string
	isBool    bool
	given     *[]givenValue
	fromEnv   *bool // false while the command line is parsed
}

// givenValue is a value a flag or a CACHEGATE_ variable gave.
type givenValue struct {
	name, value string
	fromEnv     bool
}

func (g givenValue) source() string {
	if g.fromEnv {
		return "env " + envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(g.name, "-", "_"))
	}
	return "flag -" + g.name
}

func (v *flagValue) String() string   { return v.def }
func (v *flagValue) IsBoolFlag() bool { return v.isBool }

func (v *flagValue) Set(s string) error {
	*v.given = append(*v.given, givenValue{name: v.name, value: s, fromEnv: *v.fromEnv})
	return nil
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

// secret is the admin token, given directly or as a file to read, and
// where it came from.
type secret struct {
	value, file, source string
}

// read returns the token, reading its file if it was given as one, like
// miniflux's *_FILE settings: surrounding white space is dropped.
func (s secret) read(readFile func(string) ([]byte, error)) (string, error) {
	if s.file == "" {
		return s.value, nil
	}
	b, err := readFile(s.file)
	if err != nil {
		return "", &configError{Source: s.source, Err: fmt.Errorf("read the admin token: %w", err)}
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", &configError{Source: s.source, Err: fmt.Errorf("%s is empty: want a file holding the admin token", s.file)}
	}
	return tok, nil
}

// addUpstreams adds the NAME=URL upstreams one source gave, each value a
// comma-separated list, with the server's default policy, replacing any of
// the same name.
func addUpstreams(c *web.Config, list []givenValue, def cache.Policy) error {
	seen := map[string]bool{}
	for _, g := range list {
		source := g.source()
		items := []string{g.value}
		if g.fromEnv {
			items = splitList(g.value)
		}
		for _, item := range items {
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
			u := web.UpstreamConfig{Name: name, URL: rawURL, Policy: def}
			if err := u.Policy.Validate(); err != nil {
				return &configError{Source: source, Err: fmt.Errorf("upstream %q: %w", name, err)}
			}
			if i := slices.IndexFunc(c.Upstreams, func(o web.UpstreamConfig) bool { return o.Name == name }); i >= 0 {
				c.Upstreams[i] = u
			} else {
				c.Upstreams = append(c.Upstreams, u)
			}
		}
	}
	return nil
}
