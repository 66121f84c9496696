package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// fileConfig is the config file (see cachegate.example.yaml), and the
// server settings that the environment and the flags set over it.
type fileConfig struct {
	Listen              listenAddr              `yaml:"listen"`
	Backend             dsn                     `yaml:"backend"`
	Backends            backendMap              `yaml:"backends"`
	ExpireAfter         expiry                  `yaml:"expire_after"`
	Mode                mode                    `yaml:"mode"`
	AdminToken          text                    `yaml:"admin_token"`
	AdminTokenFile      text                    `yaml:"admin_token_file"`
	Demo                boolean                 `yaml:"demo"`
	ShutdownTimeout     duration                `yaml:"shutdown_timeout"`
	AdminHosts          hostList                `yaml:"admin_hosts"`
	TrustedProxies      proxyList               `yaml:"trusted_proxies"`
	MaxInflightBytes    positiveSize            `yaml:"max_inflight_bytes"`
	ClientHeaderTimeout duration                `yaml:"client_header_timeout"`
	ClientReadTimeout   duration                `yaml:"client_read_timeout"`
	ClientWriteTimeout  duration                `yaml:"client_write_timeout"`
	ClientIdleTimeout   duration                `yaml:"client_idle_timeout"`
	FastLane            boolean                 `yaml:"fast_lane"`
	MetricsListen       optionalListen          `yaml:"metrics_listen"`
	LogFormat           logFormat               `yaml:"log_format"`
	AccessLog           accessLogMode           `yaml:"access_log"`
	AccessLogSampleHits sampleRate              `yaml:"access_log_sample_hits"`
	Upstreams           map[string]upstreamFile `yaml:"upstreams"`
}

// keys are the settings of each mapping of the file with fixed keys, by
// the path pattern of wants.
var keys = map[string][]string{
	"":                yamlKeys(reflect.TypeFor[fileConfig]()),
	"upstreams.*":     yamlKeys(reflect.TypeFor[upstreamFile]()),
	"upstreams.*.key": yamlKeys(reflect.TypeFor[keyFile]()),
}

func yamlKeys(t reflect.Type) []string {
	out := make([]string, t.NumField())
	for i := range out {
		out[i] = t.Field(i).Tag.Get("yaml")
	}
	return out
}

// wants says what each setting of the file accepts, by path: the name of
// an upstream or a backend is a *. A setting whose want is not a list or a
// mapping needs a value: an empty one would silently become zero
// (expire_immediately, false).
var wants = map[string]string{
	"":                      "a mapping with the keys " + strings.Join(keys[""], ", "),
	"listen":                "a string",
	"metrics_listen":        "a host:port, or empty for none",
	"backend":               "a string",
	"backends":              "a mapping of backend names to DSNs",
	"backends.*":            "a backend DSN",
	"expire_after":          expiryWant,
	"mode":                  modeWant,
	"admin_token":           "a string",
	"admin_token_file":      "a file name",
	"demo":                  boolWant,
	"shutdown_timeout":      durationWant,
	"admin_hosts":           "a list of host names, like [cache.example.com]",
	"trusted_proxies":       "a list of IP addresses or CIDRs, like [127.0.0.1, 10.0.0.0/8]",
	"max_inflight_bytes":    sizeWant,
	"client_header_timeout": durationWant,
	"client_read_timeout":   durationWant,
	"client_write_timeout":  durationWant,
	"client_idle_timeout":   durationWant,
	"fast_lane":             boolWant,
	"upstreams":             "a mapping of upstream names to settings",

	// The logs (config_log.go).
	"log_format":             logFormatWant,
	"access_log":             accessLogWant,
	"access_log_sample_hits": sampleHitsWant,

	"upstreams.*":                              "a mapping with the keys " + strings.Join(keys["upstreams.*"], ", "),
	"upstreams.*.url":                          "an absolute http or https URL",
	"upstreams.*.backend":                      "a backend name",
	"upstreams.*.mode":                         modeWant,
	"upstreams.*.timeout":                      durationWant,
	"upstreams.*.read_timeout":                 durationWant,
	"upstreams.*.total_timeout":                durationWant,
	"upstreams.*.expire_after":                 expiryWant,
	"upstreams.*.urls_expire_after":            "a mapping of URL patterns to expiries, first match wins",
	"upstreams.*.cache_control":                boolWant,
	"upstreams.*.entry_headers":                boolWant,
	"upstreams.*.targeted_cache_control":       "a list of header names, like [CDN-Cache-Control]",
	"upstreams.*.stale_if_error":               stalenessWant,
	"upstreams.*.stale_while_revalidate":       stalenessWant,
	"upstreams.*.always_revalidate":            boolWant,
	"upstreams.*.allowable_codes":              "a list of HTTP status codes, like [200, 203, 301]",
	"upstreams.*.allowable_methods":            "a list of HTTP methods, like [GET, HEAD]",
	"upstreams.*.ignored_parameters":           "a list of parameter or header names, like [access_token]",
	"upstreams.*.share_credentialed_responses": boolWant,
	"upstreams.*.private_cache":                boolWant,
	"upstreams.*.client_overrides":             boolWant,
	"upstreams.*.match_headers":                "a list of header names, like [Accept-Language], or true for all headers",
	"upstreams.*.max_body_size":                sizeWant,
	"upstreams.*.content_types":                "a list of media types or prefixes ending in / or *, like [application/json, text/]",
	"upstreams.*.exclude_content_types":        "a list of media types or prefixes ending in / or *, like [image/]",
	"upstreams.*.revalidate_headers":           "a mapping of header names to values",
	"upstreams.*.key":                          "a mapping with the keys " + strings.Join(keys["upstreams.*.key"], ", ") + ", or a key expression (CEL) giving a string",
	"upstreams.*.key.expression":               "a key expression (CEL) giving a string, like 'request.url.path + \"?\" + request.query[\"id\"]'",
	"upstreams.*.filter":                       "a filter expression (CEL) giving a bool, like 'response.status == 200'",
	"upstreams.*.key.ignore_query":             boolWant,
	"upstreams.*.key.ignore_body":              boolWant,
	"upstreams.*.key.ignore_headers":           boolWant,
}

// configFile is a decoded config file, with its tree to name the line of a
// setting in later errors.
type configFile struct {
	name string
	root *yaml.Node // nil for an empty file
}

// decodeFile decodes the YAML b over cfg. Unknown keys are refused
// (KnownFields), and every error is a *configError with the setting's path
// and line.
func decodeFile(name string, b []byte, cfg *fileConfig) (*configFile, error) {
	f := &configFile{name: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, f.errorf(0, "", err)
	}
	if doc.Kind == 0 {
		return f, nil
	}
	f.root = doc.Content[0]
	if err := f.checkNulls(f.root, nil); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, f.translate(err)
	}
	return f, nil
}

func (f *configFile) errorf(line int, field string, err error) *configError {
	return &configError{Source: "config " + f.name, Line: line, Field: field, Err: err}
}

// checkNulls refuses an empty value of a setting that needs one; yaml.v3
// leaves those fields as they were without a word.
func (f *configFile) checkNulls(n *yaml.Node, path []string) error {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" {
			if err := f.checkNulls(v, path); err != nil {
				return err
			}
			continue
		}
		p := append(slices.Clip(path), k.Value)
		want, known := wants[pattern(p)]
		if v.ShortTag() == "!!null" && known && !strings.HasPrefix(want, "a list") && !strings.HasPrefix(want, "a mapping") {
			return f.errorf(k.Line, joinPath(p), fmt.Errorf("no value: want %s", want))
		}
		if err := f.checkNulls(v, p); err != nil {
			return err
		}
	}
	return nil
}

// The messages of yaml.v3's TypeError.
var (
	unknownKeyRE = regexp.MustCompile(`^line (\d+): field (.*) not found in type .+$`)
	twiceRE      = regexp.MustCompile(`^line (\d+): mapping key (".*") already defined at line (\d+)$`)
	shapeRE      = regexp.MustCompile("^line (\\d+): cannot unmarshal (!!\\w+)(?: `(.*)`)? into .+$")
)

// translate turns a decoding error into a *configError that names the
// setting by its path.
func (f *configFile) translate(err error) error {
	var ne *nodeError
	if errors.As(err, &ne) {
		path, k := f.locate(func(n *yaml.Node) bool {
			return n.Line == ne.n.Line && n.Column == ne.n.Column && n.Kind == ne.n.Kind
		})
		line := ne.n.Line
		if k != nil && ne.n.ShortTag() == "!!null" {
			line = k.Line
		}
		if ne.err == nil {
			return f.errorf(line, joinPath(path), fmt.Errorf("bad value %s: want %s", describe(ne.n), wants[pattern(path)]))
		}
		return f.errorf(line, joinPath(path), ne.err)
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return f.errorf(0, "", err)
	}
	msg := te.Errors[0]
	line := 0
	if m := unknownKeyRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		path, _ := f.locate(func(n *yaml.Node) bool { return n.Line == line && n.Value == m[2] && n.Kind == yaml.ScalarNode })
		if len(path) > 0 {
			return f.errorf(line, joinPath(path), fmt.Errorf("unknown setting: want one of %s", strings.Join(keys[pattern(path[:len(path)-1])], ", ")))
		}
	} else if m := twiceRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		key, _ := strconv.Unquote(m[2])
		path, _ := f.locate(func(n *yaml.Node) bool { return n.Line == line && n.Value == key && n.Kind == yaml.ScalarNode })
		return f.errorf(line, joinPath(path), fmt.Errorf("set twice (first on line %s)", m[3]))
	} else if m := shapeRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		prefix := strings.TrimSuffix(m[3], "...")
		path, _ := f.locate(func(n *yaml.Node) bool {
			return n.Line == line && n.ShortTag() == m[2] && strings.HasPrefix(n.Value, prefix)
		})
		if n := f.lookup(path...); n != nil {
			return f.errorf(line, joinPath(path), fmt.Errorf("bad value %s: want %s", describe(n), wants[pattern(path)]))
		}
	}
	return f.errorf(line, "", errors.New(strings.TrimPrefix(msg, "line "+strconv.Itoa(line)+": ")))
}

// locate finds the first node of the file for which match is true, and
// returns the path of the setting it is, or is in, and that setting's key
// node. Aliases are not followed: a node is found where it is written.
func (f *configFile) locate(match func(*yaml.Node) bool) (path []string, key *yaml.Node) {
	var walk func(n, k *yaml.Node, path []string) ([]string, *yaml.Node, bool)
	walk = func(n, k *yaml.Node, path []string) ([]string, *yaml.Node, bool) {
		if match(n) {
			return path, k, true
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				ck, cv := n.Content[i], n.Content[i+1]
				p := append(slices.Clip(path), ck.Value)
				if ck.Value == "<<" {
					p = path
				} else if match(ck) {
					return p, ck, true
				}
				if r, rk, ok := walk(cv, ck, p); ok {
					return r, rk, true
				}
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				if r, rk, ok := walk(c, k, path); ok {
					return r, rk, true
				}
			}
		}
		return nil, nil, false
	}
	if f.root == nil {
		return nil, nil
	}
	path, key, _ = walk(f.root, nil, nil)
	return path, key
}

// lookup returns the node of the setting at path, or nil.
func (f *configFile) lookup(path ...string) *yaml.Node {
	n := f.root
	for _, key := range path {
		n = resolve(n)
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return resolve(n)
}

// line returns the line of the setting at path, or of the nearest
// enclosing one.
func (f *configFile) line(path ...string) int {
	for i := len(path); i > 0; i-- {
		if parent := f.lookup(path[:i-1]...); parent != nil && parent.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(parent.Content); j += 2 {
				if k := parent.Content[j]; k.Value == path[i-1] {
					if v := parent.Content[j+1]; i == len(path) && v.ShortTag() != "!!null" {
						return v.Line
					}
					return k.Line
				}
			}
		}
	}
	return 0
}

// order returns the keys of the mapping at path in the file's order.
func (f *configFile) order(path ...string) []string {
	n := f.lookup(path...)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var out []string
	for i := 0; i < len(n.Content); i += 2 {
		out = append(out, n.Content[i].Value)
	}
	return out
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// pattern is the key of wants for path: the names of upstreams, backends,
// URL patterns and headers are *.
func pattern(path []string) string {
	p := slices.Clone(path)
	if len(p) > 1 && (p[0] == "upstreams" || p[0] == "backends") {
		p[1] = "*"
	}
	if len(p) > 3 && (p[2] == "urls_expire_after" || p[2] == "revalidate_headers") {
		p[3] = "*"
	}
	return strings.Join(p, ".")
}

// joinPath renders a path: upstreams.github, or urls_expire_after["/repos/*"]
// for a key that is not a plain word.
func joinPath(path []string) string {
	var b strings.Builder
	for _, key := range path {
		plain := key != "" && strings.IndexFunc(key, func(r rune) bool { return !isNameRune(r) }) < 0
		switch {
		case !plain:
			b.WriteString("[" + strconv.Quote(key) + "]")
		case b.Len() > 0:
			b.WriteString("." + key)
		default:
			b.WriteString(key)
		}
	}
	return b.String()
}

// describe renders a value for an error message.
func describe(n *yaml.Node) string {
	n = resolve(n)
	switch n.Kind {
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	case yaml.SequenceNode:
		items := make([]string, len(n.Content))
		for i, c := range n.Content {
			if c.Kind == yaml.AliasNode { // which may hold this very list
				items[i] = "*" + c.Value
				continue
			}
			items[i] = describe(c)
		}
		return "[" + strings.Join(items, ", ") + "]"
	case yaml.MappingNode:
		return "(a mapping)"
	}
	return "(unknown)"
}
