package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway/expr"
	"github.com/cachegate/cachegate/web"
	"gopkg.in/yaml.v3"
)

// upstreamFile is one upstream of the file. Its policy settings are
// pointers: those left out take the server's default policy.
type upstreamFile struct {
	URL                        upstreamURL   `yaml:"url"`
	Backend                    text          `yaml:"backend"`
	Mode                       *mode         `yaml:"mode"`
	Timeout                    duration      `yaml:"timeout"`
	ReadTimeout                duration      `yaml:"read_timeout"`
	TotalTimeout               duration      `yaml:"total_timeout"`
	ExpireAfter                *expiry       `yaml:"expire_after"`
	URLsExpireAfter            urlRules      `yaml:"urls_expire_after"`
	CacheControl               *boolean      `yaml:"cache_control"`
	TargetedCacheControl       *strList      `yaml:"targeted_cache_control"`
	EntryHeaders               *boolean      `yaml:"entry_headers"`
	StaleIfError               *staleness    `yaml:"stale_if_error"`
	StaleWhileRevalidate       *staleness    `yaml:"stale_while_revalidate"`
	AlwaysRevalidate           *boolean      `yaml:"always_revalidate"`
	AllowableCodes             *intList      `yaml:"allowable_codes"`
	AllowableMethods           *strList      `yaml:"allowable_methods"`
	IgnoredParameters          *strList      `yaml:"ignored_parameters"`
	ShareCredentialedResponses *boolean      `yaml:"share_credentialed_responses"`
	PrivateCache               *boolean      `yaml:"private_cache"`
	ClientOverrides            *boolean      `yaml:"client_overrides"`
	MatchHeaders               *matchHeaders `yaml:"match_headers"`
	MaxBodySize                *size         `yaml:"max_body_size"`
	ContentTypes               *strList      `yaml:"content_types"`
	ExcludeContentTypes        *strList      `yaml:"exclude_content_types"`
	RevalidateHeaders          headers       `yaml:"revalidate_headers"`
	Key                        keyFile       `yaml:"key"`
	Filter                     *text         `yaml:"filter"`
}

// keyFile is an upstream's key settings: a mapping, or on its own the key
// expression (key: 'request.url.path'), as issue 17 and requests-cache's
// key_fn users write it.
type keyFile struct {
	IgnoreQuery   *boolean `yaml:"ignore_query"`
	IgnoreBody    *boolean `yaml:"ignore_body"`
	IgnoreHeaders *boolean `yaml:"ignore_headers"`
	Expression    *text    `yaml:"expression"`
}

func (v *keyFile) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var t text
		if err := t.UnmarshalYAML(n); err != nil {
			return err
		}
		*v = keyFile{Expression: &t}
		return nil
	}
	kvs, err := entries(n)
	if err != nil {
		return err
	}
	// A custom decoder loses the file decoder's KnownFields.
	known := keys["upstreams.*.key"]
	for _, kv := range kvs {
		if !slices.Contains(known, kv[0].Value) {
			return &nodeError{kv[0], fmt.Errorf("unknown setting: want one of %s", strings.Join(known, ", "))}
		}
	}
	type plain keyFile
	return n.Decode((*plain)(v))
}

// upstreams returns the file's upstreams in the file's order, each from
// the server's default policy def.
func (f *configFile) upstreams(ups map[string]upstreamFile, backends map[string]string, def cache.Policy) ([]web.UpstreamConfig, error) {
	var names []string
	for _, name := range f.order("upstreams") {
		if _, ok := ups[name]; ok && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	var merged []string // through a merge key, whose order is the file's no more
	for name := range ups {
		if !slices.Contains(names, name) {
			merged = append(merged, name)
		}
	}
	slices.Sort(merged)
	var out []web.UpstreamConfig
	for _, name := range append(names, merged...) {
		u, err := f.upstream(name, ups[name], backends, def)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

func (f *configFile) upstream(name string, uf upstreamFile, backends map[string]string, def cache.Policy) (web.UpstreamConfig, error) {
	path := []string{"upstreams", name}
	fail := func(setting string, err error) error {
		p := path
		if setting != "" {
			p = append(slices.Clip(path), setting)
		}
		return f.errorf(f.line(p...), joinPath(p), err)
	}
	if err := checkName("upstream", name); err != nil {
		return web.UpstreamConfig{}, fail("", err)
	}
	u := web.UpstreamConfig{
		Name:              name,
		URL:               string(uf.URL),
		Backend:           string(uf.Backend),
		Timeout:           time.Duration(uf.Timeout),
		ReadTimeout:       time.Duration(uf.ReadTimeout),
		TotalTimeout:      time.Duration(uf.TotalTimeout),
		RevalidateHeaders: nilIfEmpty(uf.RevalidateHeaders),
		Policy:            def,
	}
	if u.URL == "" {
		return u, fail("url", errors.New("missing: want an absolute http or https URL, like https://api.github.com"))
	}
	if u.Backend == cache.DefaultBackendName {
		u.Backend = ""
	}
	if _, ok := backends[u.Backend]; !ok && u.Backend != "" {
		keys := make([]string, 0, len(backends))
		for k := range backends {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return u, fail("backend", fmt.Errorf("unknown backend %q: want default or one of backends (%s)", u.Backend, strings.Join(keys, ", ")))
	}
	p := &u.Policy
	set(&p.Mode, uf.Mode, func(m mode) cache.Mode { return cache.Mode(m) })
	set(&p.ExpireAfter, uf.ExpireAfter, func(e expiry) cache.Expiry { return cache.Expiry(e) })
	if uf.URLsExpireAfter != nil {
		p.URLsExpireAfter = uf.URLsExpireAfter
	}
	set(&p.CacheControl, uf.CacheControl, toBool)
	// An empty list is kept as one: it turns the targeted fields off,
	// where nil means the default.
	set(&p.TargetedCacheControl, uf.TargetedCacheControl, func(l strList) []string { return append([]string{}, l...) })
	set(&p.StaleIfError, uf.StaleIfError, toStaleness)
	set(&p.StaleWhileRevalidate, uf.StaleWhileRevalidate, toStaleness)
	set(&p.AlwaysRevalidate, uf.AlwaysRevalidate, toBool)
	set(&p.EntryHeaders, uf.EntryHeaders, toBool)
	set(&p.AllowableCodes, uf.AllowableCodes, func(l intList) []int { return l })
	set(&p.AllowableMethods, uf.AllowableMethods, toStrings)
	set(&p.IgnoredParameters, uf.IgnoredParameters, toStrings)
	set(&p.ShareCredentialedResponses, uf.ShareCredentialedResponses, toBool)
	set(&p.PrivateCache, uf.PrivateCache, toBool)
	set(&p.ClientOverrides, uf.ClientOverrides, toBool)
	if m := uf.MatchHeaders; m != nil {
		p.MatchAllHeaders, p.MatchHeaders = m.all, m.names
	}
	set(&p.MaxBodySize, uf.MaxBodySize, func(s size) int64 { return int64(s) })
	set(&p.ContentTypes, uf.ContentTypes, toStrings)
	set(&p.ExcludeContentTypes, uf.ExcludeContentTypes, toStrings)
	set(&p.Key.IgnoreQuery, uf.Key.IgnoreQuery, toBool)
	set(&p.Key.IgnoreBody, uf.Key.IgnoreBody, toBool)
	set(&p.Key.IgnoreHeaders, uf.Key.IgnoreHeaders, toBool)
	if err := f.expressions(&u, name, uf); err != nil {
		return u, err
	}
	if err := p.Validate(); err != nil {
		// Validate's errors start with the setting's name.
		if setting, rest, ok := strings.Cut(err.Error(), ": "); ok {
			return u, fail(setting, errors.New(rest))
		}
		return u, fail("", err)
	}
	return u, nil
}

// expressions compiles an upstream's key and filter expressions; an error
// names the setting, its line in the file and the position in the
// expression.
func (f *configFile) expressions(u *web.UpstreamConfig, name string, uf upstreamFile) error {
	bad := func(path []string, err error) error {
		return f.errorf(f.line(path...), joinPath(path), fmt.Errorf("bad expression %w", err))
	}
	if e := uf.Key.Expression; e != nil {
		path := []string{"upstreams", name, "key"}
		if n := f.lookup(path...); n != nil && n.Kind == yaml.MappingNode {
			path = append(path, "expression")
		}
		k, err := expr.CompileKey(string(*e))
		if err != nil {
			return bad(path, err)
		}
		u.KeyExpr = k
	}
	if e := uf.Filter; e != nil {
		fl, err := expr.CompileFilter(string(*e))
		if err != nil {
			return bad([]string{"upstreams", name, "filter"}, err)
		}
		u.FilterExpr = fl
	}
	return nil
}

// set sets *dst to the converted *v, if the file gave v.
func set[T, D any](dst *D, v *T, conv func(T) D) {
	if v != nil {
		*dst = conv(*v)
	}
}

func toBool(b boolean) bool                   { return bool(b) }
func toStaleness(s staleness) cache.Staleness { return cache.Staleness(s) }
func toStrings(l strList) []string            { return l }
func nilIfEmpty(h headers) map[string][]string {
	if len(h) == 0 {
		return nil
	}
	return h
}
