package main

import (
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
)

// A config file is written by hand: whatever YAML it holds, loadConfig must
// not panic, every error must be a *configError naming the file (main exits
// 2 with it), and a config it accepts must start: every upstream passes the
// gateway's own checks and names a configured backend.
func FuzzLoadConfig(f *testing.F) {
	example, err := os.ReadFile("../../cachegate.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(example))
	for _, s := range []string{
		"",
		"listen: 127.0.0.1:8080\n",
		"upstreams:\n  github:\n    url: https://api.github.com\n    expire_after: 10m\n    cache_control: true\n",
		"upstreams:\n  a: {url: 'http://x/p', backend: scratch}\nbackends:\n  scratch: memory://\n",
		"upstreams:\n  a: {url: 'http://x', backend: nope}\n",
		"upstreams:\n  a: {url: 'http://x', urls_expire_after: {'/a*': 1d, 'x': never}, stale_if_error: 5m}\n",
		"upstreams:\n  a: {url: 'http://x', match_headers: true, ignored_parameters: [token], key: {ignore_query: true}}\n",
		"upstreams:\n  a: {url: 'http://x', max_body_size: 10MiB, allowable_codes: [200, 404], allowable_methods: [GET, POST]}\n",
		"upstreams:\n  a: {url: 'http://x', content_types: [text/], exclude_content_types: ['image/*'], mode: rfc9111}\n",
		"base: &b {url: 'http://x'}\nupstreams:\n  a: *b\n",
		"upstreams:\n  a:\n    <<: {url: 'http://x'}\n    timeout: 5s\n",
		"a: &a [*a]\n",
		"x: &x {y: *x}\nupstreams: *x\n",
		"upstreams: [1, 2]\n",
		"upstreams:\n  ../..: {url: 'http://x'}\n",
		"upstreams:\n  a: {url: 'http://x/?q=1'}\n",
		"upstreams:\n  a: {url: 'javascript:alert(1)'}\n",
		"upstreams:\n  a: {url: 'http://user:pass@x'}\n",
		"upstreams:\n  a: {url: 'http://x', max_body_size: -1}\n",
		"upstreams:\n  a: {url: 'http://x', timeout: 99999999999h}\n",
		"expire_after: 9999999999d\n",
		"shutdown_timeout: -5s\n",
		"admin_token: x\nadmin_token_file: y\n",
		"admin_token_file: /etc/shadow\n",
		"demo: true\nupstreams:\n  demo: {url: 'http://x'}\n",
		"listen: [a]\n",
		"!!binary aGVsbG8=\n",
		"--- a\n--- b\n",
		"\t- x",
		"? [a, b]\n: c\n",
		"listen: 127.0.0.1:8080\nlisten: :9\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, file string) {
		readFile := func(name string) ([]byte, error) {
			if name == "cachegate.yaml" {
				return []byte(file), nil
			}
			return nil, os.ErrNotExist
		}
		cfg, err := loadConfig([]string{"-config", "cachegate.yaml"}, readFile)
		if err != nil {
			ce, ok := err.(*configError)
			if !ok {
				t.Fatalf("error %T %q is not a *configError", err, err)
			}
			if ce.Err == nil || !strings.HasPrefix(ce.Error(), "config cachegate.yaml") {
				t.Fatalf("error %q does not name the config file", ce.Error())
			}
			return
		}
		if err := checkListen(cfg.Listen); err != nil {
			t.Fatalf("accepted listen %q: %v", cfg.Listen, err)
		}
		if cfg.ShutdownTimeout < 0 {
			t.Fatalf("accepted shutdown timeout %v", cfg.ShutdownTimeout)
		}
		b := memory.New(0)
		defer b.Close()
		var ups []gateway.Upstream
		for _, uc := range cfg.Upstreams {
			if _, ok := cfg.Backends[uc.Backend]; !ok && uc.Backend != "" && uc.Backend != cache.DefaultBackendName {
				t.Fatalf("upstream %s: accepted unknown backend %q", uc.Name, uc.Backend)
			}
			u, err := url.Parse(uc.URL)
			if err != nil {
				t.Fatalf("upstream %s: accepted URL %q: %v", uc.Name, uc.URL, err)
			}
			ups = append(ups, gateway.Upstream{Name: uc.Name, URL: u, Policy: uc.Policy, Backend: b, Timeout: uc.Timeout})
		}
		g, err := gateway.New(gateway.Options{}, ups...)
		if err != nil {
			t.Fatalf("loadConfig accepted a config the gateway refuses: %v\n%s", err, file)
		}
		g.Close()
	})
}
