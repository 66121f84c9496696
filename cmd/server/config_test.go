package main

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/web"
)

// load runs loadConfig with args, the environment env and, when file is not
// empty, a config file holding it, passed with -config.
func load(tb testing.TB, file string, env map[string]string, args ...string) (web.Config, error) {
	tb.Helper()
	if file != "" {
		path := writeFile(tb, "cachegate.yaml", file)
		args = append([]string{"-config", path}, args...)
	}
	setEnv(tb, env)
	return loadConfig(args, os.ReadFile)
}

// setEnv gives the test the environment env, and no other CACHEGATE_
// variable: loadConfig reads them through ff, from the process.
func setEnv(tb testing.TB, env map[string]string) {
	tb.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "CACHEGATE_") {
			tb.Setenv(k, "")
		}
	}
	for k, v := range env {
		tb.Setenv(k, v)
	}
}

// mustLoad is load that fails the test on error.
func mustLoad(tb testing.TB, file string, env map[string]string, args ...string) web.Config {
	tb.Helper()
	cfg, err := load(tb, file, env, args...)
	if err != nil {
		tb.Fatalf("loadConfig: %v", err)
	}
	return cfg
}

// writeFile writes content to name in a fresh temporary folder and returns
// its path.
func writeFile(tb testing.TB, name, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// policy is the default policy of an upstream, validated.
func policy(tb testing.TB, expire cache.Expiry, mode cache.Mode) cache.Policy {
	tb.Helper()
	p := cache.DefaultPolicy(expire)
	p.Mode = mode
	if err := p.Validate(); err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestLoadConfigDefaults(t *testing.T) {
	got := mustLoad(t, "", nil)
	want := web.Config{
		Listen:          "127.0.0.1:8080",
		Backend:         "sqlite://cachegate.db",
		Backends:        map[string]string{},
		ExpireAfter:     cache.Expiry(time.Hour),
		ShutdownTimeout: 15 * time.Second,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestLoadConfigPrecedence(t *testing.T) {
	const file = `
listen: 127.0.0.1:1000
backend: memory://
expire_after: 10m
mode: rfc9111
admin_token: from-file
demo: true
shutdown_timeout: 5s
upstreams:
  a: {url: "http://a.example"}
`
	tests := []struct {
		name  string
		file  string
		env   map[string]string
		args  []string
		check func(t *testing.T, c web.Config)
	}{
		{
			name: "file over defaults",
			file: file,
			check: func(t *testing.T, c web.Config) {
				if got, want := c.Listen, "127.0.0.1:1000"; got != want {
					t.Errorf("Listen = %q, want %q", got, want)
				}
				if got, want := c.Backend, "memory://"; got != want {
					t.Errorf("Backend = %q, want %q", got, want)
				}
				if got, want := c.ExpireAfter, cache.Expiry(10*time.Minute); got != want {
					t.Errorf("ExpireAfter = %v, want %v", got, want)
				}
				if got, want := c.AdminToken, "from-file"; got != want {
					t.Errorf("AdminToken = %q, want %q", got, want)
				}
				if !c.Demo {
					t.Error("Demo = false, want true")
				}
				if got, want := c.ShutdownTimeout, 5*time.Second; got != want {
					t.Errorf("ShutdownTimeout = %v, want %v", got, want)
				}
				if got, want := c.Upstreams[0].Policy, policy(t, cache.Expiry(10*time.Minute), cache.ModeRFC9111); !reflect.DeepEqual(got, want) {
					t.Errorf("policy = %+v, want %+v", got, want)
				}
			},
		},
		{
			name: "env over file",
			file: file,
			env: map[string]string{
				"CACHEGATE_LISTEN":           "127.0.0.1:2000",
				"CACHEGATE_BACKEND":          "sqlite://env.db",
				"CACHEGATE_EXPIRE_AFTER":     "20m",
				"CACHEGATE_MODE":             "requests-cache",
				"CACHEGATE_ADMIN_TOKEN":      "from-env",
				"CACHEGATE_DEMO":             "false",
				"CACHEGATE_SHUTDOWN_TIMEOUT": "6s",
			},
			check: func(t *testing.T, c web.Config) {
				if got, want := c.Listen, "127.0.0.1:2000"; got != want {
					t.Errorf("Listen = %q, want %q", got, want)
				}
				if got, want := c.Backend, "sqlite://env.db"; got != want {
					t.Errorf("Backend = %q, want %q", got, want)
				}
				if got, want := c.ExpireAfter, cache.Expiry(20*time.Minute); got != want {
					t.Errorf("ExpireAfter = %v, want %v", got, want)
				}
				if got, want := c.AdminToken, "from-env"; got != want {
					t.Errorf("AdminToken = %q, want %q", got, want)
				}
				if c.Demo {
					t.Error("Demo = true, want false")
				}
				if got, want := c.ShutdownTimeout, 6*time.Second; got != want {
					t.Errorf("ShutdownTimeout = %v, want %v", got, want)
				}
				// The file's upstream takes the env's defaults.
				if got, want := c.Upstreams[0].Policy, policy(t, cache.Expiry(20*time.Minute), cache.ModeRequestsCache); !reflect.DeepEqual(got, want) {
					t.Errorf("policy = %+v, want %+v", got, want)
				}
			},
		},
		{
			name: "flags over env",
			file: file,
			env: map[string]string{
				"CACHEGATE_LISTEN":           "127.0.0.1:2000",
				"CACHEGATE_BACKEND":          "sqlite://env.db",
				"CACHEGATE_EXPIRE_AFTER":     "20m",
				"CACHEGATE_MODE":             "requests-cache",
				"CACHEGATE_ADMIN_TOKEN":      "from-env",
				"CACHEGATE_DEMO":             "false",
				"CACHEGATE_SHUTDOWN_TIMEOUT": "6s",
			},
			args: []string{
				"-listen", ":3000", "-backend", "memory://", "-expire-after", "never",
				"-mode", "rfc9111", "-admin-token", "from-flag", "-demo", "-shutdown-timeout", "7",
			},
			check: func(t *testing.T, c web.Config) {
				if got, want := c.Listen, ":3000"; got != want {
					t.Errorf("Listen = %q, want %q", got, want)
				}
				if got, want := c.Backend, "memory://"; got != want {
					t.Errorf("Backend = %q, want %q", got, want)
				}
				if got, want := c.ExpireAfter, cache.NeverExpire; got != want {
					t.Errorf("ExpireAfter = %v, want %v", got, want)
				}
				if got, want := c.AdminToken, "from-flag"; got != want {
					t.Errorf("AdminToken = %q, want %q", got, want)
				}
				if !c.Demo {
					t.Error("Demo = false, want true")
				}
				if got, want := c.ShutdownTimeout, 7*time.Second; got != want {
					t.Errorf("ShutdownTimeout = %v, want %v", got, want)
				}
				if got, want := c.Upstreams[0].Policy, policy(t, cache.NeverExpire, cache.ModeRFC9111); !reflect.DeepEqual(got, want) {
					t.Errorf("policy = %+v, want %+v", got, want)
				}
			},
		},
		{
			name: "flag false over env true",
			env:  map[string]string{"CACHEGATE_DEMO": "true"},
			args: []string{"-demo=false"},
			check: func(t *testing.T, c web.Config) {
				if c.Demo {
					t.Error("Demo = true, want false")
				}
			},
		},
		{
			name: "fast lane: file off, env on, flag off",
			file: "fast_lane: false\n",
			check: func(t *testing.T, c web.Config) {
				if !c.NoFastLane {
					t.Error("the file's fast_lane: false left the lane on")
				}
			},
		},
		{
			name: "fast lane: env over file",
			file: "fast_lane: false\n",
			env:  map[string]string{"CACHEGATE_FAST_LANE": "true"},
			check: func(t *testing.T, c web.Config) {
				if c.NoFastLane {
					t.Error("CACHEGATE_FAST_LANE=true left the lane off")
				}
			},
		},
		{
			name: "fast lane: flag over env",
			env:  map[string]string{"CACHEGATE_FAST_LANE": "true"},
			args: []string{"-fast-lane=false"},
			check: func(t *testing.T, c web.Config) {
				if !c.NoFastLane {
					t.Error("-fast-lane=false left the lane on")
				}
			},
		},
		{
			name: "config file from env",
			env:  map[string]string{"CACHEGATE_CONFIG": writeFile(t, "env.yaml", "listen: 127.0.0.1:4000\n")},
			check: func(t *testing.T, c web.Config) {
				if got, want := c.Listen, "127.0.0.1:4000"; got != want {
					t.Errorf("Listen = %q, want %q", got, want)
				}
			},
		},
		{
			name: "config flag over config env",
			env:  map[string]string{"CACHEGATE_CONFIG": writeFile(t, "env.yaml", "listen: 127.0.0.1:4000\n")},
			args: []string{"-config", writeFile(t, "flag.yaml", "listen: 127.0.0.1:5000\n")},
			check: func(t *testing.T, c web.Config) {
				if got, want := c.Listen, "127.0.0.1:5000"; got != want {
					t.Errorf("Listen = %q, want %q", got, want)
				}
			},
		},
		{
			name: "token file from env over token in file",
			file: file,
			env:  map[string]string{"CACHEGATE_ADMIN_TOKEN_FILE": writeFile(t, "token", "  s3cret\n")},
			check: func(t *testing.T, c web.Config) {
				if got, want := c.AdminToken, "s3cret"; got != want {
					t.Errorf("AdminToken = %q, want %q", got, want)
				}
			},
		},
		{
			name: "token flag over token file env",
			env:  map[string]string{"CACHEGATE_ADMIN_TOKEN_FILE": "/does/not/exist"},
			args: []string{"-admin-token", "flag"},
			check: func(t *testing.T, c web.Config) {
				if got, want := c.AdminToken, "flag"; got != want {
					t.Errorf("AdminToken = %q, want %q", got, want)
				}
			},
		},
		{
			name: "token file flag over token env",
			env:  map[string]string{"CACHEGATE_ADMIN_TOKEN": "env"},
			args: []string{"-admin-token-file", writeFile(t, "token", "from-file-flag")},
			check: func(t *testing.T, c web.Config) {
				if got, want := c.AdminToken, "from-file-flag"; got != want {
					t.Errorf("AdminToken = %q, want %q", got, want)
				}
			},
		},
		{
			name: "token file in config",
			file: "admin_token_file: " + writeFile(t, "token", "cfg-token\n") + "\n",
			check: func(t *testing.T, c web.Config) {
				if got, want := c.AdminToken, "cfg-token"; got != want {
					t.Errorf("AdminToken = %q, want %q", got, want)
				}
			},
		},
		{
			name: "upstreams: env replaces file, flag replaces env, order kept",
			file: `
expire_after: 5m
upstreams:
  a: {url: "http://a.example", expire_after: 1m, cache_control: true}
  b: {url: "http://b.example"}
`,
			env:  map[string]string{"CACHEGATE_UPSTREAMS": "a=http://a-env.example,c=http://c-env.example"},
			args: []string{"-upstream", "c=https://c-flag.example/v1", "-upstream", "d=http://d.example"},
			check: func(t *testing.T, c web.Config) {
				p := policy(t, cache.Expiry(5*time.Minute), cache.ModeRequestsCache)
				want := []web.UpstreamConfig{
					{Name: "a", URL: "http://a-env.example", Policy: p},
					{Name: "b", URL: "http://b.example", Policy: p},
					{Name: "c", URL: "https://c-flag.example/v1", Policy: p},
					{Name: "d", URL: "http://d.example", Policy: p},
				}
				if !reflect.DeepEqual(c.Upstreams, want) {
					t.Errorf("Upstreams =\n%+v\nwant\n%+v", c.Upstreams, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustLoad(t, tt.file, tt.env, tt.args...))
		})
	}
}

func TestLoadConfigFile(t *testing.T) {
	const file = `
listen: "[::1]:9090"
backend: sqlite://./data/cache.db
backends: {local: "sqlite://./data/local.db", shared: "mongodb://localhost:27017/cachegate"}
expire_after: 2h
mode: requests-cache
admin_token: tok
demo: false
shutdown_timeout: 1m
upstreams:
  github:
    url: https://api.github.com
    backend: shared
    mode: rfc9111
    timeout: 10s
    expire_after: 10m
    cache_control: true
    stale_if_error: 10m
    stale_while_revalidate: true
    always_revalidate: true
    allowable_codes: [200, 203, 301]
    allowable_methods: [get, HEAD, post]
    ignored_parameters: [access_token, Authorization]
    share_credentialed_responses: true
    private_cache: true
    client_overrides: true
    match_headers: [accept-language]
    max_body_size: 10MiB
    content_types: [application/json, text/]
    exclude_content_types: [image/]
    key: {ignore_query: true, ignore_body: true, ignore_headers: true}
    urls_expire_after:
      "/repos/*/releases*": 1d
      "api.github.com/rate_limit": do_not_cache
  plain:
    url: http://localhost:9000/prefix
    backend: default
  all-headers:
    url: http://h.example
    match_headers: true
    stale_if_error: false
    max_body_size: 4096
  timeout-seconds:
    url: http://t.example
    timeout: 3
`
	got := mustLoad(t, file, nil)
	def := policy(t, cache.Expiry(2*time.Hour), cache.ModeRequestsCache)
	allHeaders := def
	allHeaders.MatchAllHeaders = true
	allHeaders.MaxBodySize = 4096
	want := web.Config{
		Listen:          "[::1]:9090",
		Backend:         "sqlite://./data/cache.db",
		Backends:        map[string]string{"local": "sqlite://./data/local.db", "shared": "mongodb://localhost:27017/cachegate"},
		ExpireAfter:     cache.Expiry(2 * time.Hour),
		AdminToken:      "tok",
		ShutdownTimeout: time.Minute,
		Upstreams: []web.UpstreamConfig{
			{
				Name:    "github",
				URL:     "https://api.github.com",
				Backend: "shared",
				Timeout: 10 * time.Second,
				Policy: cache.Policy{
					Mode:        cache.ModeRFC9111,
					ExpireAfter: cache.Expiry(10 * time.Minute),
					URLsExpireAfter: []cache.URLRule{
						{Pattern: "/repos/*/releases*", Expire: cache.Expiry(24 * time.Hour)},
						{Pattern: "api.github.com/rate_limit", Expire: cache.DoNotCache},
					},
					CacheControl:         true,
					AllowableCodes:       []int{200, 203, 301},
					AllowableMethods:     []string{"GET", "HEAD", "POST"},
					IgnoredParameters:    []string{"access_token", "Authorization"},
					MatchHeaders:         []string{"Accept-Language"},
					StaleIfError:         cache.Staleness{On: true, Max: 10 * time.Minute},
					StaleWhileRevalidate: cache.Staleness{On: true},
					AlwaysRevalidate:     true,
					MaxBodySize:          10 << 20,
					ContentTypes:         []string{"application/json", "text/"},
					ExcludeContentTypes:  []string{"image/"},
					Key:                  cache.KeyParts{IgnoreQuery: true, IgnoreBody: true, IgnoreHeaders: true},

					ShareCredentialedResponses: true,
					PrivateCache:               true,
					ClientOverrides:            true,
				},
			},
			{Name: "plain", URL: "http://localhost:9000/prefix", Policy: def},
			{Name: "all-headers", URL: "http://h.example", Policy: allHeaders},
			{Name: "timeout-seconds", URL: "http://t.example", Timeout: 3 * time.Second, Policy: def},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
}

// The limits on memory and waits come from the file, the environment and
// the flags like every server setting, and the upstream timeouts from the
// file.
func TestLoadConfigLimits(t *testing.T) {
	const file = `
max_inflight_bytes: 256MiB
client_header_timeout: 5s
client_read_timeout: 2m
client_write_timeout: 20s
client_idle_timeout: 90s
upstreams:
  u:
    url: http://u.example
    read_timeout: 10s
    total_timeout: 1h
`
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want web.Config
	}{
		{name: "file", want: web.Config{MaxInflightBytes: 256 << 20, ClientHeaderTimeout: 5 * time.Second, ClientReadTimeout: 2 * time.Minute, ClientWriteTimeout: 20 * time.Second, ClientIdleTimeout: 90 * time.Second}},
		{
			name: "env over file",
			env: map[string]string{"CACHEGATE_MAX_INFLIGHT_BYTES": "1GiB", "CACHEGATE_CLIENT_HEADER_TIMEOUT": "1s", "CACHEGATE_CLIENT_READ_TIMEOUT": "2s",
				"CACHEGATE_CLIENT_WRITE_TIMEOUT": "3s", "CACHEGATE_CLIENT_IDLE_TIMEOUT": "4"},
			want: web.Config{MaxInflightBytes: 1 << 30, ClientHeaderTimeout: time.Second, ClientReadTimeout: 2 * time.Second, ClientWriteTimeout: 3 * time.Second, ClientIdleTimeout: 4 * time.Second},
		},
		{
			name: "flags over env",
			env:  map[string]string{"CACHEGATE_MAX_INFLIGHT_BYTES": "1GiB", "CACHEGATE_CLIENT_WRITE_TIMEOUT": "3s"},
			args: []string{"-max-inflight-bytes", "64MiB", "-client-header-timeout", "6s", "-client-read-timeout", "7s", "-client-write-timeout", "8s", "-client-idle-timeout", "9s"},
			want: web.Config{MaxInflightBytes: 64 << 20, ClientHeaderTimeout: 6 * time.Second, ClientReadTimeout: 7 * time.Second, ClientWriteTimeout: 8 * time.Second, ClientIdleTimeout: 9 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, file, tt.env, tt.args...)
			got := web.Config{MaxInflightBytes: c.MaxInflightBytes, ClientHeaderTimeout: c.ClientHeaderTimeout, ClientReadTimeout: c.ClientReadTimeout, ClientWriteTimeout: c.ClientWriteTimeout, ClientIdleTimeout: c.ClientIdleTimeout}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			u := c.Upstreams[0]
			if u.ReadTimeout != 10*time.Second || u.TotalTimeout != time.Hour {
				t.Errorf("upstream read_timeout %v, total_timeout %v; want 10s, 1h", u.ReadTimeout, u.TotalTimeout)
			}
		})
	}
	// Unset, they stay zero: web picks the defaults.
	c := mustLoad(t, "", nil)
	if c.MaxInflightBytes != 0 || c.ClientWriteTimeout != 0 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestLoadConfigURLsExpireAfterOrder(t *testing.T) {
	// Not sorted either way, so a map would lose the order.
	const file = `
upstreams:
  u:
    url: http://u.example
    urls_expire_after:
      "/m/*": 1m
      "/z/*": never
      "/a/*": expire_immediately
      "u.example/b": 90
      "/c/*": 1d
`
	got := mustLoad(t, file, nil).Upstreams[0].Policy.URLsExpireAfter
	want := []cache.URLRule{
		{Pattern: "/m/*", Expire: cache.Expiry(time.Minute)},
		{Pattern: "/z/*", Expire: cache.NeverExpire},
		{Pattern: "/a/*", Expire: cache.ExpireImmediately},
		{Pattern: "u.example/b", Expire: cache.Expiry(90 * time.Second)},
		{Pattern: "/c/*", Expire: cache.Expiry(24 * time.Hour)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestLoadConfigMergeKeys(t *testing.T) {
	const file = `
upstreams:
  a: &common
    url: http://a.example
    expire_after: 5m
    cache_control: true
  b:
    <<: *common
    url: http://b.example
`
	got := mustLoad(t, file, nil).Upstreams
	if got, want := len(got), 2; got != want {
		t.Fatalf("%d upstreams, want %d", got, want)
	}
	b := got[1]
	if b.URL != "http://b.example" || b.Policy.ExpireAfter != cache.Expiry(5*time.Minute) || !b.Policy.CacheControl {
		t.Fatalf("b = %+v, want the merged settings with its own URL", b)
	}
}

func TestLoadConfigEnvUpstreams(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  []string // name=url
	}{
		{name: "one", value: "a=http://a.example", want: []string{"a=http://a.example"}},
		{name: "several", value: "a=http://a.example,b=https://b.example/p", want: []string{"a=http://a.example", "b=https://b.example/p"}},
		{name: "spaces and empty items", value: " a = http://a.example , ,b=http://b.example,", want: []string{"a=http://a.example", "b=http://b.example"}},
		{name: "port and path", value: "x.y_z-1=http://127.0.0.1:9000/base/", want: []string{"x.y_z-1=http://127.0.0.1:9000/base/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, "", map[string]string{"CACHEGATE_UPSTREAMS": tt.value})
			var got []string
			for _, u := range c.Upstreams {
				got = append(got, u.Name+"="+u.URL)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	up := func(settings string) string {
		return "upstreams:\n  github:\n    url: https://api.github.com\n" + settings + "\n"
	}
	tests := []struct {
		name string
		file string
		env  map[string]string
		args []string
		want []string // substrings of the error
	}{
		// Flags.
		{name: "unknown flag", args: []string{"-nope"}, want: []string{"flags: ", "-nope", "-h"}},
		{name: "argument", args: []string{"serve"}, want: []string{`unexpected "serve"`}},
		{name: "bad bool flag", args: []string{"-demo=maybe"}, want: []string{"-demo"}},
		{name: "flag listen", args: []string{"-listen", "8080"}, want: []string{`flag -listen: bad address "8080": want host:port`}},
		{name: "flag listen port", args: []string{"-listen", "localhost:99999"}, want: []string{"flag -listen: bad address"}},
		{name: "flag backend", args: []string{"-backend", "postgres://x"}, want: []string{`flag -backend: bad backend DSN "postgres://x": want sqlite://`}},
		{name: "flag backend write_behind_window", args: []string{"-backend", "sqlite://c.db?write_behind_window=soon"}, want: []string{`flag -backend: bad backend DSN "sqlite://c.db?write_behind_window=soon": write_behind_window "soon": want a duration`}},
		{name: "flag backend negative write_behind_window", args: []string{"-backend", "file:///tmp/c?write_behind_window=-1s"}, want: []string{`flag -backend: bad backend DSN`, `write_behind_window "-1s"`}},
		{name: "flag expire-after", args: []string{"-expire-after", "1x"}, want: []string{`flag -expire-after: bad expiry "1x": want`}},
		{name: "flag mode", args: []string{"-mode", "varnish"}, want: []string{`flag -mode: unknown mode "varnish": want requests-cache or rfc9111`}},
		{name: "flag shutdown-timeout", args: []string{"-shutdown-timeout", "never"}, want: []string{`flag -shutdown-timeout: bad duration "never": want`}},
		{name: "flag max-inflight-bytes", args: []string{"-max-inflight-bytes", "lots"}, want: []string{`flag -max-inflight-bytes: bad size "lots": want a size in bytes`}},
		{name: "flag max-inflight-bytes zero", args: []string{"-max-inflight-bytes", "0"}, want: []string{`flag -max-inflight-bytes: bad size "0"`}},
		{name: "flag client-header-timeout", args: []string{"-client-header-timeout", "soon"}, want: []string{`flag -client-header-timeout: bad duration "soon"`}},
		{name: "flag client-read-timeout", args: []string{"-client-read-timeout", "-1s"}, want: []string{`flag -client-read-timeout: bad duration "-1s"`}},
		{name: "flag client-write-timeout", args: []string{"-client-write-timeout", "never"}, want: []string{`flag -client-write-timeout: bad duration "never"`}},
		{name: "flag client-idle-timeout", args: []string{"-client-idle-timeout", "x"}, want: []string{`flag -client-idle-timeout: bad duration "x"`}},
		{name: "flag upstream not pair", args: []string{"-upstream", "foo"}, want: []string{`flag -upstream: "foo" is not NAME=URL`}},
		{name: "flag upstream empty url", args: []string{"-upstream", "foo="}, want: []string{`flag -upstream: "foo=" is not NAME=URL`}},
		{name: "flag upstream name", args: []string{"-upstream", "a/b=http://x"}, want: []string{`flag -upstream: bad upstream name "a/b": want letters`}},
		{name: "flag upstream dotdot", args: []string{"-upstream", "..=http://x"}, want: []string{`flag -upstream: bad upstream name ".."`}},
		{name: "flag upstream url scheme", args: []string{"-upstream", "a=ftp://x"}, want: []string{`flag -upstream: upstream "a": bad URL "ftp://x": want an absolute http or https URL`}},
		{name: "flag upstream url relative", args: []string{"-upstream", "a=/x"}, want: []string{`flag -upstream: upstream "a": bad URL "/x"`}},
		{name: "flag upstream url query", args: []string{"-upstream", "a=http://x/?q=1"}, want: []string{`bad URL "http://x/?q=1": has a query`}},
		{name: "flag upstream url fragment", args: []string{"-upstream", "a=http://x/#f"}, want: []string{`bad URL "http://x/#f": has a fragment`}},
		{name: "flag upstream twice", args: []string{"-upstream", "a=http://x", "-upstream", "a=http://y"}, want: []string{`flag -upstream: upstream "a" given twice`}},
		{name: "flag token and token file", args: []string{"-admin-token", "x", "-admin-token-file", "f"}, want: []string{"flag -admin-token: set together with flag -admin-token-file"}},
		{name: "flag token file missing", args: []string{"-admin-token-file", "/does/not/exist"}, want: []string{"flag -admin-token-file: read the admin token:", "/does/not/exist"}},
		{name: "flag token file empty", args: []string{"-admin-token-file", writeFile(t, "empty", " \n")}, want: []string{"flag -admin-token-file: ", "is empty"}},
		{name: "flag config missing", args: []string{"-config", "/does/not/exist.yaml"}, want: []string{"flag -config: read the config file:", "/does/not/exist.yaml"}},
		{name: "demo and upstream demo", args: []string{"-demo", "-upstream", "demo=http://x"}, want: []string{`flag -demo: the demo mounts an upstream named "demo"`}},

		// Environment.
		{name: "env listen", env: map[string]string{"CACHEGATE_LISTEN": "nope"}, want: []string{`env CACHEGATE_LISTEN: bad address "nope"`}},
		{name: "env backend", env: map[string]string{"CACHEGATE_BACKEND": "cachegate.db"}, want: []string{`env CACHEGATE_BACKEND: bad backend DSN "cachegate.db"`}},
		{name: "env expire", env: map[string]string{"CACHEGATE_EXPIRE_AFTER": "-5s"}, want: []string{`env CACHEGATE_EXPIRE_AFTER: negative expiry "-5s"`}},
		{name: "env mode", env: map[string]string{"CACHEGATE_MODE": "x"}, want: []string{`env CACHEGATE_MODE: unknown mode "x"`}},
		{name: "env shutdown", env: map[string]string{"CACHEGATE_SHUTDOWN_TIMEOUT": "soon"}, want: []string{`env CACHEGATE_SHUTDOWN_TIMEOUT: bad duration "soon"`}},
		{name: "env max inflight", env: map[string]string{"CACHEGATE_MAX_INFLIGHT_BYTES": "1 parsec"}, want: []string{`env CACHEGATE_MAX_INFLIGHT_BYTES: bad size "1 parsec"`}},
		{name: "env client write timeout", env: map[string]string{"CACHEGATE_CLIENT_WRITE_TIMEOUT": "soon"}, want: []string{`env CACHEGATE_CLIENT_WRITE_TIMEOUT: bad duration "soon"`}},
		{name: "env demo", env: map[string]string{"CACHEGATE_DEMO": "maybe"}, want: []string{`env CACHEGATE_DEMO: bad value "maybe": want true or false`}},
		{name: "env fast lane", env: map[string]string{"CACHEGATE_FAST_LANE": "fast"}, want: []string{`env CACHEGATE_FAST_LANE: bad value "fast": want true or false`}},
		{name: "env upstreams", env: map[string]string{"CACHEGATE_UPSTREAMS": "a=http://x,foo"}, want: []string{`env CACHEGATE_UPSTREAMS: "foo" is not NAME=URL`}},
		{name: "env upstreams twice", env: map[string]string{"CACHEGATE_UPSTREAMS": "a=http://x,a=http://y"}, want: []string{`env CACHEGATE_UPSTREAMS: upstream "a" given twice`}},
		{name: "env token and file", env: map[string]string{"CACHEGATE_ADMIN_TOKEN": "x", "CACHEGATE_ADMIN_TOKEN_FILE": "y"}, want: []string{"env CACHEGATE_ADMIN_TOKEN: set together with env CACHEGATE_ADMIN_TOKEN_FILE"}},
		{name: "env config missing", env: map[string]string{"CACHEGATE_CONFIG": "/does/not/exist.yaml"}, want: []string{"env CACHEGATE_CONFIG: read the config file:"}},
		{name: "env demo and file upstream", file: up(""), env: map[string]string{"CACHEGATE_DEMO": "1", "CACHEGATE_UPSTREAMS": "demo=http://x"}, want: []string{"env CACHEGATE_DEMO: the demo mounts"}},

		// The file, top level.
		{name: "yaml syntax", file: "listen: [", want: []string{"config ", "cachegate.yaml: yaml: "}},
		{name: "not a mapping", file: "- a\n- b\n", want: []string{"cachegate.yaml:1: bad value [\"a\", \"b\"]: want a mapping with the keys listen"}},
		{name: "unknown key", file: "listen: :80\nlisen: :81\n", want: []string{`cachegate.yaml:2: lisen: unknown setting: want one of listen, backend`}},
		{name: "key twice", file: "listen: :80\nlisten: :81\n", want: []string{`cachegate.yaml:2: listen: set twice (first on line 1)`}},
		{name: "listen", file: "listen: localhost\n", want: []string{`cachegate.yaml:1: listen: bad address "localhost": want host:port`}},
		{name: "listen mapping", file: "listen: {a: 1}\n", want: []string{`cachegate.yaml:1: listen: bad value (a mapping): want a string`}},
		{name: "backend", file: "backend: redis://x\n", want: []string{`cachegate.yaml:1: backend: bad backend DSN "redis://x"`}},
		{name: "backends not mapping", file: "backends: [a]\n", want: []string{`backends: bad value ["a"]: want a mapping of backend names to DSNs`}},
		{name: "backends name", file: "backends: {\"a b\": \"memory://\"}\n", want: []string{`backends["a b"]: bad backend name "a b"`}},
		{name: "backends default", file: "backends: {default: \"memory://\"}\n", want: []string{`backends.default: "default" names the -backend backend`}},
		{name: "backends dsn", file: "backends:\n  x: nope\n", want: []string{`cachegate.yaml:2: backends.x: bad backend DSN "nope"`}},
		{name: "expire_after", file: "expire_after: 1x\n", want: []string{`cachegate.yaml:1: expire_after: bad expiry "1x": want`}},
		{name: "expire_after empty", file: "expire_after:\n", want: []string{`cachegate.yaml:1: expire_after: no value: want a duration`}},
		{name: "mode", file: "mode: strict\n", want: []string{`cachegate.yaml:1: mode: unknown mode "strict": want requests-cache or rfc9111`}},
		{name: "demo", file: "demo: maybe\n", want: []string{`cachegate.yaml:1: demo: bad value "maybe": want true or false`}},
		{name: "fast lane", file: "fast_lane: 2\n", want: []string{`cachegate.yaml:1: fast_lane: bad value "2": want true or false`}},
		{name: "shutdown_timeout", file: "shutdown_timeout: forever\n", want: []string{`cachegate.yaml:1: shutdown_timeout: bad duration "forever"`}},
		{name: "max_inflight_bytes", file: "max_inflight_bytes: all\n", want: []string{`cachegate.yaml:1: max_inflight_bytes: bad size "all"`}},
		{name: "client_idle_timeout", file: "client_idle_timeout: [1]\n", want: []string{`cachegate.yaml:1: client_idle_timeout: bad value ["1"]: want a duration`}},
		{name: "token and token file", file: "admin_token: x\nadmin_token_file: y\n", want: []string{"cachegate.yaml:1: admin_token: set together with admin_token_file"}},
		{name: "token file missing", file: "admin_token_file: /does/not/exist\n", want: []string{"cachegate.yaml: admin_token_file: read the admin token:"}},
		{name: "demo in file and upstream demo", file: "demo: true\nupstreams: {demo: {url: \"http://x\"}}\n", want: []string{"cachegate.yaml: demo: the demo mounts"}},
		{name: "upstreams not mapping", file: "upstreams: [a]\n", want: []string{`cachegate.yaml:1: upstreams: bad value ["a"]: want a mapping of upstream names to settings`}},

		// The file, upstreams.
		{name: "upstream name", file: "upstreams:\n  \"a b\": {url: \"http://x\"}\n", want: []string{`cachegate.yaml:2: upstreams["a b"]: bad upstream name "a b": want letters, digits`}},
		{name: "upstream twice", file: "upstreams:\n  a: {url: \"http://x\"}\n  a: {url: \"http://y\"}\n", want: []string{`cachegate.yaml:3: upstreams.a: set twice (first on line 2)`}},
		{name: "upstream not mapping", file: "upstreams:\n  a: http://x\n", want: []string{`cachegate.yaml:2: upstreams.a: bad value "http://x": want a mapping with the keys url, backend`}},
		{name: "upstream empty", file: "upstreams:\n  a:\n", want: []string{`cachegate.yaml:2: upstreams.a.url: missing: want an absolute http or https URL`}},
		{name: "upstream url missing", file: "upstreams:\n  a:\n    timeout: 1s\n", want: []string{`cachegate.yaml:2: upstreams.a.url: missing`}},
		{name: "upstream url", file: "upstreams:\n  a:\n    url: api.github.com\n", want: []string{`cachegate.yaml:3: upstreams.a.url: bad URL "api.github.com": want an absolute http or https URL`}},
		{name: "upstream unknown key", file: up("    expires: 1h"), want: []string{`cachegate.yaml:4: upstreams.github.expires: unknown setting: want one of url, backend, mode`}},
		{name: "upstream backend", file: "backends: {local: \"memory://\"}\n" + up("    backend: shared"), want: []string{`cachegate.yaml:5: upstreams.github.backend: unknown backend "shared": want default or one of backends (local)`}},
		{name: "upstream mode", file: up("    mode: rfc2616"), want: []string{`upstreams.github.mode: unknown mode "rfc2616": want requests-cache or rfc9111`}},
		{name: "upstream timeout", file: up("    timeout: -1s"), want: []string{`cachegate.yaml:4: upstreams.github.timeout: bad duration "-1s": want a duration`}},
		{name: "upstream read_timeout", file: up("    read_timeout: soon"), want: []string{`cachegate.yaml:4: upstreams.github.read_timeout: bad duration "soon": want a duration`}},
		{name: "upstream total_timeout", file: up("    total_timeout: never"), want: []string{`cachegate.yaml:4: upstreams.github.total_timeout: bad duration "never": want a duration`}},
		{name: "upstream expire_after", file: up("    expire_after: 1x"), want: []string{`config `, `cachegate.yaml:4: upstreams.github.expire_after: bad expiry "1x": want a duration like 90s`}},
		{name: "upstream urls_expire_after value", file: up("    urls_expire_after:\n      \"/a\": 1d\n      \"/b/*\": soon"), want: []string{`cachegate.yaml:6: upstreams.github.urls_expire_after["/b/*"]: bad expiry "soon"`}},
		{name: "upstream urls_expire_after list", file: up("    urls_expire_after: [\"/a\"]"), want: []string{`upstreams.github.urls_expire_after: bad value ["/a"]: want a mapping of URL patterns to expiries`}},
		{name: "upstream urls_expire_after empty pattern", file: up("    urls_expire_after: {\"\": 1h}"), want: []string{`upstreams.github.urls_expire_after[""]: empty pattern`}},
		{name: "upstream cache_control", file: up("    cache_control: sometimes"), want: []string{`upstreams.github.cache_control: bad value "sometimes": want true or false`}},
		{name: "upstream stale_if_error", file: up("    stale_if_error: often"), want: []string{`upstreams.github.stale_if_error: bad staleness "often": want true, false or a maximum staleness`}},
		{name: "upstream stale_while_revalidate", file: up("    stale_while_revalidate: [1]"), want: []string{`upstreams.github.stale_while_revalidate: bad value ["1"]: want true, false or a maximum staleness`}},
		{name: "upstream always_revalidate", file: up("    always_revalidate: 2"), want: []string{`upstreams.github.always_revalidate: bad value "2": want true or false`}},
		{name: "upstream allowable_codes type", file: up("    allowable_codes: [200, ok]"), want: []string{`upstreams.github.allowable_codes: bad value ["200", "ok"]: want a list of HTTP status codes`}},
		{name: "upstream allowable_codes range", file: up("    allowable_codes: [200, 999]"), want: []string{`cachegate.yaml:4: upstreams.github.allowable_codes: 999 is not an HTTP status (100-599)`}},
		{name: "upstream allowable_methods", file: up("    allowable_methods: [\"GET /\"]"), want: []string{`cachegate.yaml:4: upstreams.github.allowable_methods: "GET /" is not an HTTP method`}},
		{name: "upstream allowable_methods scalar", file: up("    allowable_methods: GET"), want: []string{`upstreams.github.allowable_methods: bad value "GET": want a list of HTTP methods`}},
		{name: "upstream ignored_parameters", file: up("    ignored_parameters: {a: 1}"), want: []string{`upstreams.github.ignored_parameters: bad value (a mapping): want a list of parameter`}},
		{name: "upstream share_credentialed_responses", file: up("    share_credentialed_responses: yes please"), want: []string{`cachegate.yaml:4: upstreams.github.share_credentialed_responses: bad value "yes please": want true or false`}},
		{name: "upstream private_cache", file: up("    private_cache: [true]"), want: []string{`upstreams.github.private_cache: bad value ["true"]: want true or false`}},
		{name: "upstream client_overrides", file: up("    client_overrides: admin"), want: []string{`cachegate.yaml:4: upstreams.github.client_overrides: bad value "admin": want true or false`}},
		{name: "upstream match_headers", file: up("    match_headers: some"), want: []string{`upstreams.github.match_headers: bad value "some": want a list of header names, like [Accept-Language], or true for all headers`}},
		{name: "upstream max_body_size", file: up("    max_body_size: 10 parsecs"), want: []string{`cachegate.yaml:4: upstreams.github.max_body_size: bad size "10 parsecs": want a size in bytes`}},
		{name: "upstream max_body_size negative", file: up("    max_body_size: -1"), want: []string{`upstreams.github.max_body_size: bad size "-1"`}},
		{name: "upstream content_types", file: up("    content_types: text/"), want: []string{`upstreams.github.content_types: bad value "text/": want a list of media types`}},
		{name: "upstream exclude_content_types", file: up("    exclude_content_types: image/"), want: []string{`upstreams.github.exclude_content_types: bad value "image/": want a list of media types`}},
		{name: "upstream key unknown", file: up("    key: {ignore_path: true}"), want: []string{`cachegate.yaml:4: upstreams.github.key.ignore_path: unknown setting: want one of ignore_query, ignore_body, ignore_headers`}},
		{name: "upstream key value", file: up("    key: {ignore_query: maybe}"), want: []string{`upstreams.github.key.ignore_query: bad value "maybe": want true or false`}},
		{name: "upstream key scalar", file: up("    key: query"), want: []string{`upstreams.github.key: bad value "query": want a mapping with the keys ignore_query`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.file, tt.env, tt.args...)
			if err == nil {
				t.Fatalf("loadConfig: no error, want one containing %q", tt.want)
			}
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("loadConfig: %T %v, want a *configError", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %v\nwant it to contain\n  %v", err, w)
				}
			}
		})
	}
}

func TestLoadConfigHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		t.Run(arg, func(t *testing.T) {
			_, err := load(t, "", nil, arg)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("loadConfig(%s) = %v, want flag.ErrHelp", arg, err)
			}
			var ce *configError
			if errors.As(err, &ce) {
				t.Fatalf("help is a config error: %v", err)
			}
			for _, want := range []string{"Usage: cachegate", "-listen", "CACHEGATE_LISTEN", "-upstream NAME=URL", "-expire-after", "-admin-token", "-demo", "-mode", "-shutdown-timeout", "-config", "-backend"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("usage lacks %q:\n%s", want, err)
				}
			}
		})
	}
}

func TestExampleConfig(t *testing.T) {
	cfg, err := loadConfig([]string{"-config", "../../cachegate.example.yaml"}, os.ReadFile)
	if err != nil {
		t.Fatalf("the example config does not load: %v", err)
	}
	if got, want := len(cfg.Upstreams), 2; got != want {
		t.Fatalf("%d upstreams, want %d", got, want)
	}
	gh := cfg.Upstreams[0]
	if got, want := len(gh.Policy.URLsExpireAfter), 3; got != want {
		t.Errorf("github has %d urls_expire_after rules, want %d", got, want)
	}
	if got, want := gh.Policy.MaxBodySize, int64(10<<20); got != want {
		t.Errorf("github max_body_size = %d, want %d", got, want)
	}
}

// TestLoadConfigAdminGuard: admin_hosts and trusted_proxies from each
// source, later ones replacing earlier lists, and their errors.
func TestLoadConfigAdminGuard(t *testing.T) {
	const file = "admin_hosts: [Cache.Example.com, gw-1]\ntrusted_proxies: [127.0.0.1, \"10.1.2.3/8\", \"::1\"]\n"
	prefixes := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range s {
			out = append(out, netip.MustParsePrefix(p))
		}
		return out
	}
	tests := []struct {
		name    string
		file    string
		env     map[string]string
		args    []string
		hosts   []string
		proxies []netip.Prefix
	}{
		{name: "none"},
		{name: "file", file: file, hosts: []string{"cache.example.com", "gw-1"}, proxies: prefixes("127.0.0.1/32", "10.0.0.0/8", "::1/128")},
		{name: "empty lists", file: "admin_hosts: []\ntrusted_proxies:\n"},
		{
			name: "env over file", file: file,
			env:   map[string]string{"CACHEGATE_ADMIN_HOSTS": "a.example, b.example.", "CACHEGATE_TRUSTED_PROXIES": "192.168.0.0/16"},
			hosts: []string{"a.example", "b.example"}, proxies: prefixes("192.168.0.0/16"),
		},
		{
			name: "flags over env", file: file,
			env:   map[string]string{"CACHEGATE_ADMIN_HOSTS": "a.example", "CACHEGATE_TRUSTED_PROXIES": "192.168.0.0/16"},
			args:  []string{"-admin-hosts", "c.example", "-trusted-proxies", "127.0.0.1,fd00::/8"},
			hosts: []string{"c.example"}, proxies: prefixes("127.0.0.1/32", "fd00::/8"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.file, tt.env, tt.args...)
			if !reflect.DeepEqual(c.AdminHosts, tt.hosts) {
				t.Errorf("AdminHosts = %q, want %q", c.AdminHosts, tt.hosts)
			}
			if !reflect.DeepEqual(c.TrustedProxies, tt.proxies) {
				t.Errorf("TrustedProxies = %v, want %v", c.TrustedProxies, tt.proxies)
			}
		})
	}

	errs := []struct {
		name string
		file string
		env  map[string]string
		args []string
		want string
	}{
		{name: "flag host with port", args: []string{"-admin-hosts", "cache.example.com:8080"}, want: `flag -admin-hosts: bad host name "cache.example.com:8080": want a host name without scheme or port`},
		{name: "flag host with scheme", args: []string{"-admin-hosts", "https://cache.example.com"}, want: `flag -admin-hosts: bad host name "https://cache.example.com"`},
		{name: "env host", env: map[string]string{"CACHEGATE_ADMIN_HOSTS": "a..b"}, want: `env CACHEGATE_ADMIN_HOSTS: bad host name "a..b"`},
		{name: "file host", file: "admin_hosts: [\"*.example.com\"]\n", want: `cachegate.yaml:1: admin_hosts: bad host name "*.example.com"`},
		{name: "file hosts scalar", file: "admin_hosts: cache.example.com\n", want: `cachegate.yaml:1: admin_hosts: bad value "cache.example.com": want a list of host names`},
		{name: "flag proxy", args: []string{"-trusted-proxies", "proxy.internal"}, want: `flag -trusted-proxies: bad proxy address "proxy.internal": want an IP address or a CIDR range`},
		{name: "env proxy", env: map[string]string{"CACHEGATE_TRUSTED_PROXIES": "10.0.0.0/33"}, want: `env CACHEGATE_TRUSTED_PROXIES: bad proxy address "10.0.0.0/33"`},
		{name: "file proxy", file: "trusted_proxies: [127.0.0.1, 300.0.0.1]\n", want: `cachegate.yaml:1: trusted_proxies: bad proxy address "300.0.0.1"`},
		{name: "flag proxy with zone", args: []string{"-trusted-proxies", "fe80::1%eth0"}, want: `flag -trusted-proxies: bad proxy address "fe80::1%eth0"`},
		{name: "file proxies mapping", file: "trusted_proxies: {a: 1}\n", want: `trusted_proxies: bad value (a mapping): want a list of IP addresses or CIDRs`},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.file, tt.env, tt.args...)
			var ce *configError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("loadConfig: %v, want a *configError containing\n  %s", err, tt.want)
			}
		})
	}
}
