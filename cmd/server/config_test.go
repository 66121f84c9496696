package main

import (
	"errors"
	"flag"
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
			name: "empty config flag over config env",
			env:  map[string]string{"CACHEGATE_CONFIG": writeFile(t, "env.yaml", "listen: 127.0.0.1:4000\n")},
			args: []string{"-config", ""},
			check: func(t *testing.T, c web.Config) {
				if got, want := c.Listen, defaultListen; got != want {
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
	if got, want := len(gh.Policy.URLsExpireAfter), 4; got != want {
		t.Errorf("github has %d urls_expire_after rules, want %d", got, want)
	}
	commit := cache.Request{Method: "GET", Path: "/repos/a/b/commits/" + strings.Repeat("ab", 20), URL: "api.github.com/repos/a/b/commits/" + strings.Repeat("ab", 20)}
	if r, ok := gh.Policy.MatchURLRule(commit); !ok || r.Expire != cache.NeverExpire {
		t.Errorf("a commit URL matches %+v (%v), want the regular expression's never", r, ok)
	}
	if got, want := gh.Policy.MaxBodySize, int64(10<<20); got != want {
		t.Errorf("github max_body_size = %d, want %d", got, want)
	}
}
