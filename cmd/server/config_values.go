package main

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"gopkg.in/yaml.v3"

	"github.com/cachegate/cachegate/cache"
)

// The types of the settings. Each reads its value from a flag or an
// environment variable (Set) and from the config file (UnmarshalYAML), with
// the same checks; in the file a bad value is a *nodeError, so the error can
// name the setting's path and line.

// nodeError is a bad value at node n of the config file. A nil err means
// the value has the wrong shape: the error says what the setting wants.
type nodeError struct {
	n   *yaml.Node
	err error
}

func (e *nodeError) Error() string {
	if e.err == nil {
		return "bad value " + describe(e.n)
	}
	return e.err.Error()
}

// decodeScalar gives the text of the scalar n to set.
func decodeScalar(n *yaml.Node, set func(string) error) error {
	if n.Kind != yaml.ScalarNode {
		return &nodeError{n: n}
	}
	if err := set(n.Value); err != nil {
		return &nodeError{n, err}
	}
	return nil
}

// decodeList decodes the sequence n into dst.
func decodeList[T any](n *yaml.Node, dst *[]T) error {
	if n.Kind != yaml.SequenceNode || n.Decode(dst) != nil {
		return &nodeError{n: n}
	}
	return nil
}

type text string

func (v *text) Set(s string) error                     { *v = text(s); return nil }
func (v *text) UnmarshalYAML(n *yaml.Node) error       { return decodeScalar(n, v.Set) }
func (v *listenAddr) UnmarshalYAML(n *yaml.Node) error { return decodeScalar(n, v.Set) }
func (v *dsn) UnmarshalYAML(n *yaml.Node) error        { return decodeScalar(n, v.Set) }
func (v *upstreamURL) UnmarshalYAML(n *yaml.Node) error {
	return decodeScalar(n, v.Set)
}
func (v *expiry) UnmarshalYAML(n *yaml.Node) error    { return decodeScalar(n, v.Set) }
func (v *staleness) UnmarshalYAML(n *yaml.Node) error { return decodeScalar(n, v.Set) }
func (v *mode) UnmarshalYAML(n *yaml.Node) error      { return decodeScalar(n, v.Set) }
func (v *duration) UnmarshalYAML(n *yaml.Node) error  { return decodeScalar(n, v.Set) }
func (v *size) UnmarshalYAML(n *yaml.Node) error      { return decodeScalar(n, v.Set) }
func (v *positiveSize) UnmarshalYAML(n *yaml.Node) error {
	return decodeScalar(n, v.Set)
}

type listenAddr string

func (v *listenAddr) Set(s string) error {
	if err := checkListen(s); err != nil {
		return err
	}
	*v = listenAddr(s)
	return nil
}

// optionalListen is a listen address that may be left empty: off.
type optionalListen string

func (v *optionalListen) Set(s string) error {
	if s != "" {
		if err := checkListen(s); err != nil {
			return err
		}
	}
	*v = optionalListen(s)
	return nil
}

func (v *optionalListen) UnmarshalYAML(n *yaml.Node) error { return decodeScalar(n, v.Set) }

type dsn string

func (v *dsn) Set(s string) error {
	if err := checkDSN(s); err != nil {
		return err
	}
	*v = dsn(s)
	return nil
}

type upstreamURL string

func (v *upstreamURL) Set(s string) error {
	if err := checkUpstreamURL(s); err != nil {
		return err
	}
	*v = upstreamURL(s)
	return nil
}

type expiry cache.Expiry

func (v *expiry) Set(s string) error {
	e, err := cache.ParseExpiry(s)
	*v = expiry(e)
	return err
}

type staleness cache.Staleness

func (v *staleness) Set(s string) error {
	return (*cache.Staleness)(v).UnmarshalText([]byte(s))
}

type mode cache.Mode

func (v *mode) Set(s string) error {
	m, err := parseMode(s)
	*v = mode(m)
	return err
}

// duration is a timeout: a Go duration, "1d", or plain seconds.
type duration time.Duration

func (v *duration) Set(s string) error {
	d, err := parseDuration(s)
	*v = duration(d)
	return err
}

// size is a byte count, plain or human ("10MiB", "512 kB").
type size int64

func (v *size) Set(s string) error {
	n, err := humanize.ParseBytes(s)
	if err != nil || n > math.MaxInt64 {
		return fmt.Errorf("bad size %q: want %s", s, sizeWant)
	}
	*v = size(n)
	return nil
}

// positiveSize is a size more than zero.
type positiveSize int64

func (v *positiveSize) Set(s string) error {
	var n size
	if err := n.Set(s); err != nil || n == 0 {
		return fmt.Errorf("bad size %q: want %s", s, sizeWant)
	}
	*v = positiveSize(n)
	return nil
}

// boolean is true or false: in the file as YAML has it, in a flag or the
// environment as strconv.ParseBool reads it (1, t, TRUE...).
type boolean bool

func (v *boolean) IsBoolFlag() bool { return true }

func (v *boolean) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("bad value %q: want true or false", s)
	}
	*v = boolean(b)
	return nil
}

func (v *boolean) UnmarshalYAML(n *yaml.Node) error {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		return &nodeError{n: n}
	}
	*v = boolean(b)
	return nil
}

// hostList is admin_hosts: plain DNS names.
type hostList []string

func (v *hostList) Set(s string) (err error) {
	*v, err = parseAdminHosts(splitList(s))
	return err
}

func (v *hostList) UnmarshalYAML(n *yaml.Node) error {
	var list []string
	if err := decodeList(n, &list); err != nil {
		return err
	}
	hosts, err := parseAdminHosts(list)
	if err != nil {
		return &nodeError{n, err}
	}
	*v = hosts
	return nil
}

// proxyList is trusted_proxies: IP addresses and CIDR ranges.
type proxyList []netip.Prefix

func (v *proxyList) Set(s string) (err error) {
	*v, err = parseProxies(splitList(s))
	return err
}

func (v *proxyList) UnmarshalYAML(n *yaml.Node) error {
	var list []string
	if err := decodeList(n, &list); err != nil {
		return err
	}
	p, err := parseProxies(list)
	if err != nil {
		return &nodeError{n, err}
	}
	*v = p
	return nil
}

type strList []string

func (v *strList) UnmarshalYAML(n *yaml.Node) error { return decodeList(n, (*[]string)(v)) }

type intList []int

func (v *intList) UnmarshalYAML(n *yaml.Node) error { return decodeList(n, (*[]int)(v)) }

// matchHeaders is a list of header names, or true for all headers.
type matchHeaders struct {
	all   bool
	names []string
}

func (v *matchHeaders) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var all boolean
		if err := all.UnmarshalYAML(n); err != nil {
			return err
		}
		*v = matchHeaders{all: bool(all)}
		return nil
	}
	v.all = false
	return decodeList(n, &v.names)
}

// entries returns the key and value nodes of the mapping n, refusing keys
// given twice; merge keys are left out.
func entries(n *yaml.Node) ([][2]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, &nodeError{n: n}
	}
	var out [][2]*yaml.Node
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case k.Kind == yaml.ScalarNode && k.Value == "<<":
			continue
		case k.Kind != yaml.ScalarNode:
			return nil, &nodeError{n, errors.New("a key is not a plain string")}
		}
		if line, dup := seen[k.Value]; dup {
			return nil, &nodeError{k, fmt.Errorf("set twice (first on line %d)", line)}
		}
		seen[k.Value] = k.Line
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out, nil
}

// backendMap is backends: names to DSNs.
type backendMap map[string]string

func (v *backendMap) UnmarshalYAML(n *yaml.Node) error {
	pairs, err := entries(n)
	if err != nil {
		return err
	}
	m := backendMap{}
	for _, kv := range pairs {
		name := kv[0].Value
		if name == cache.DefaultBackendName {
			return &nodeError{kv[0], errors.New(`"default" names the -backend backend: choose another name`)}
		}
		if err := checkName("backend", name); err != nil {
			return &nodeError{kv[0], err}
		}
		var d dsn
		if err := decodeScalar(kv[1], d.Set); err != nil {
			return err
		}
		m[name] = string(d)
	}
	*v = m
	return nil
}

// urlRules is urls_expire_after, in the file's order: the first matching
// pattern wins, so a map would not do.
type urlRules []cache.URLRule

func (v *urlRules) UnmarshalYAML(n *yaml.Node) error {
	pairs, err := entries(n)
	if err != nil {
		return err
	}
	var rules urlRules
	for _, kv := range pairs {
		if kv[0].Value == "" {
			return &nodeError{kv[0], errors.New("empty pattern: want a glob like /repos/*/releases* or api.github.com/rate_limit")}
		}
		var e expiry
		if kv[1].ShortTag() == "!!null" {
			return &nodeError{kv[1], fmt.Errorf("no value: want %s", expiryWant)}
		}
		if err := e.UnmarshalYAML(kv[1]); err != nil {
			return err
		}
		rules = append(rules, cache.URLRule{Pattern: kv[0].Value, Expire: cache.Expiry(e)})
	}
	*v = rules
	return nil
}

// headers is revalidate_headers: header names to literal values. The values
// are secrets (an API key, a bearer token): no error quotes them.
type headers http.Header

func (v *headers) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return &nodeError{n, errors.New(`want a mapping of header names to values, like {Authorization: "Bearer ..."} (the value given is not shown: it may be a secret)`)}
	}
	pairs, err := entries(n)
	if err != nil {
		return err
	}
	h := headers{}
	for _, kv := range pairs {
		k, val := kv[0], kv[1]
		if err := checkRevalidateHeader(k.Value); err != nil {
			return &nodeError{k, err}
		}
		if val.Kind != yaml.ScalarNode || val.ShortTag() == "!!null" || val.Value == "" {
			return &nodeError{k, errors.New("want the header's value as a non-empty string (not shown here: it may be a secret)")}
		}
		if strings.ContainsAny(val.Value, "\r\n\x00") {
			return &nodeError{k, errors.New("the value holds a line break or NUL, which no header value may (not shown here: it may be a secret)")}
		}
		canonical := http.CanonicalHeaderKey(k.Value)
		if _, dup := h[canonical]; dup {
			return &nodeError{k, fmt.Errorf("header %s given twice (header names ignore case)", canonical)}
		}
		h[canonical] = []string{val.Value}
	}
	*v = h
	return nil
}

const (
	expiryWant    = "a duration like 90s, 10m, 1h or 1d, seconds, an RFC 3339 date-time, never, do_not_cache or expire_immediately"
	stalenessWant = "true, false or a maximum staleness like 10m or 1d"
	modeWant      = "requests-cache or rfc9111"
	durationWant  = "a duration like 10s, 1m30s or 2h, or seconds"
	sizeWant      = "a size in bytes, like 1048576, 10MiB or 512kB"
	boolWant      = "true or false"
)
