package main

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/web"
)

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

// Every flag but -upstream sets the file's setting of its name and is read
// from the variable ff derives from its name, which its usage and the
// README promise.
func TestLoadConfigEnvNames(t *testing.T) {
	for _, s := range settings {
		if s.flag == "upstream" {
			continue
		}
		switch s.flag {
		case "config", "admin-token", "admin-token-file":
		default:
			s.field(&fileConfig{}) // panics when the file has no such setting
		}
		env := givenValue{name: s.flag, fromEnv: true}.source()[len("env "):]
		if !strings.Contains(s.usage, "(env "+env+")") {
			t.Errorf("-%s: usage %q does not name %s", s.flag, s.usage, env)
		}
	}
	c := mustLoad(t, "", map[string]string{"CACHEGATE_CLIENT_IDLE_TIMEOUT": "7s", "CACHEGATE_ADMIN_HOSTS": "a.example", "CACHEGATE_FAST_LANE": "0"})
	if c.ClientIdleTimeout != 7*time.Second || !reflect.DeepEqual(c.AdminHosts, []string{"a.example"}) || !c.NoFastLane {
		t.Fatalf("got %+v", c)
	}
}

// CACHEGATE_UPSTREAM, the name ff gives -upstream, reads like
// CACHEGATE_UPSTREAMS.
func TestLoadConfigEnvUpstreamSingular(t *testing.T) {
	c := mustLoad(t, "", map[string]string{"CACHEGATE_UPSTREAM": "a=http://a.example,b=http://b.example"})
	if got := len(c.Upstreams); got != 2 || c.Upstreams[1].URL != "http://b.example" {
		t.Fatalf("upstreams %+v, want a and b", c.Upstreams)
	}
	_, err := load(t, "", map[string]string{"CACHEGATE_UPSTREAM": "nope"})
	if err == nil || !strings.Contains(err.Error(), `env CACHEGATE_UPSTREAM: "nope" is not NAME=URL`) {
		t.Fatalf("err = %v", err)
	}
}

// targeted_cache_control names the RFC 9213 fields in order; an empty
// list turns them off, and leaving it out keeps the default.
func TestLoadConfigTargetedCacheControl(t *testing.T) {
	const file = `
upstreams:
  a: {url: "http://a.example", targeted_cache_control: [Cachegate-Cache-Control, CDN-Cache-Control]}
  b: {url: "http://b.example", targeted_cache_control: []}
  c: {url: "http://c.example"}
`
	ups := mustLoad(t, file, nil).Upstreams
	if got := ups[0].Policy.TargetedCacheControl; !reflect.DeepEqual(got, []string{"Cachegate-Cache-Control", "CDN-Cache-Control"}) {
		t.Errorf("a: %q", got)
	}
	if got := ups[1].Policy.TargetedCacheControl; got == nil || len(got) != 0 {
		t.Errorf("b: %#v, want an empty list (off)", got)
	}
	if got := ups[2].Policy.TargetedCacheControl; got != nil {
		t.Errorf("c: %#v, want nil (the default)", got)
	}
	_, err := load(t, "upstreams:\n  a: {url: \"http://a.example\", targeted_cache_control: [\"not a name\"]}\n", nil)
	if err == nil || !strings.Contains(err.Error(), `upstreams.a.targeted_cache_control: "not a name" is not a header name`) {
		t.Fatalf("err = %v", err)
	}
}

// An expiry may be an RFC 3339 date-time, unquoted in YAML too.
func TestLoadConfigAbsoluteExpiry(t *testing.T) {
	const file = `
upstreams:
  a:
    url: http://a.example
    expire_after: 2027-01-31T00:00:00Z
    urls_expire_after:
      "/x/*": "2027-06-01T12:00:00+02:00"
`
	u := mustLoad(t, file, nil).Upstreams[0]
	if at, ok := u.Policy.ExpireAfter.At(); !ok || !at.Equal(time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("expire_after %v", u.Policy.ExpireAfter)
	}
	if at, ok := u.Policy.URLsExpireAfter[0].Expire.At(); !ok || !at.Equal(time.Date(2027, 6, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("pattern expiry %v", u.Policy.URLsExpireAfter[0].Expire)
	}
	if _, err := load(t, "expire_after: 2027-13-01T00:00:00Z\n", nil); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Errorf("a bad date-time: %v", err)
	}
}

// The fifth step of the expiry order, as the README's example has it: an
// upstream's own expire_after, else the server's.
func TestUpstreamExpireAfterFallsBackToTheServers(t *testing.T) {
	const file = `
expire_after: 10m
upstreams:
  demo:
    url: http://demo.example
    expire_after: 1h
  other:
    url: http://other.example
`
	byName := map[string]cache.Expiry{}
	for _, u := range mustLoad(t, file, nil).Upstreams {
		byName[u.Name] = u.Policy.ExpireAfter
	}
	if got, want := byName["demo"], cache.Expiry(time.Hour); got != want {
		t.Errorf("demo expire_after %v, want its own %v", got, want)
	}
	if got, want := byName["other"], cache.Expiry(10*time.Minute); got != want {
		t.Errorf("other expire_after %v, want the server's %v", got, want)
	}
}
