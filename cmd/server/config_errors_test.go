package main

import (
	"errors"
	"strings"
	"testing"
)

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
		{name: "max_inflight_bytes zero", file: "max_inflight_bytes: 0\n", want: []string{`cachegate.yaml:1: max_inflight_bytes: bad size "0"`}},
		{name: "upstream key empty value", file: up("    key: {ignore_query: }"), want: []string{`cachegate.yaml:4: upstreams.github.key.ignore_query: no value: want true or false`}},
		{name: "upstream unknown key in merge", file: "upstreams:\n  a:\n    <<: {urll: \"http://x\"}\n    url: http://y\n", want: []string{`cachegate.yaml:3: upstreams.a.urll: unknown setting: want one of url,`}},
		{name: "backend twice", file: "backends:\n  a: memory://\n  a: memory://\n", want: []string{`cachegate.yaml:3: backends.a: set twice (first on line 2)`}},
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
		{name: "upstream key scalar", file: up("    key: query"), want: []string{`cachegate.yaml:4: upstreams.github.key: bad expression at 1:1: undeclared reference to 'query'`}},
		{name: "upstream key list", file: up("    key: [a]"), want: []string{`upstreams.github.key: bad value ["a"]: want a mapping with the keys ignore_query`}},
		{name: "key expression syntax", file: up(`    key: 'request.url.path +'`), want: []string{`cachegate.yaml:4: upstreams.github.key: bad expression at 1:19: Syntax error`}},
		{name: "key expression unknown field", file: up(`    key: 'request.url.pth'`), want: []string{`cachegate.yaml:4: upstreams.github.key: bad expression at 1:12: `, `pth`}},
		{name: "key expression gives int", file: up(`    key: 'size(request.url.path)'`), want: []string{`upstreams.github.key: bad expression at 1:1: the expression gives int, want string`}},
		{name: "key expression in mapping", file: up("    key:\n      ignore_body: true\n      expression: |\n        request.url.path +\n          nope"), want: []string{`cachegate.yaml:6: upstreams.github.key.expression: bad expression at 2:3: undeclared reference to 'nope'`}},
		{name: "key expression reads response", file: up(`    key: 'string(response.status)'`), want: []string{`upstreams.github.key: bad expression at 1:1: a key expression cannot read response`}},
		{name: "key mapping unknown", file: up("    key: {expresion: x}"), want: []string{`cachegate.yaml:4: upstreams.github.key.expresion: unknown setting: want one of ignore_query, ignore_body, ignore_headers, expression`}},
		{name: "filter gives string", file: up(`    filter: 'request.method'`), want: []string{`cachegate.yaml:4: upstreams.github.filter: bad expression at 1:1: the expression gives string, want bool`}},
		{name: "filter unknown variable", file: up(`    filter: 'response.status == 200 && reqest.method == "GET"'`), want: []string{`cachegate.yaml:4: upstreams.github.filter: bad expression at 1:27: undeclared reference to 'reqest'`}},
		{name: "filter empty", file: up(`    filter: ""`), want: []string{`upstreams.github.filter: bad expression at 1:1: the expression is empty`}},
		{name: "filter not scalar", file: up(`    filter: [a]`), want: []string{`upstreams.github.filter: bad value ["a"]: want a filter expression`}},
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
