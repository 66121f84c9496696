package main

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestLoadConfigRevalidateHeaders(t *testing.T) {
	cfg := mustLoad(t, "upstreams:\n  github:\n    url: https://api.github.com\n    revalidate_headers:\n"+
		"      authorization: \"Bearer t0k3n\"\n      X-Api-Key: k3y\n", nil)
	want := http.Header{"Authorization": {"Bearer t0k3n"}, "X-Api-Key": {"k3y"}}
	if got := cfg.Upstreams[0].RevalidateHeaders; !reflect.DeepEqual(got, want) {
		t.Fatalf("revalidate_headers = %v, want %v", got, want)
	}
	if cfg := mustLoad(t, "upstreams:\n  a: {url: \"http://x\"}\n", nil); cfg.Upstreams[0].RevalidateHeaders != nil {
		t.Fatalf("revalidate_headers without the setting = %v, want nil", cfg.Upstreams[0].RevalidateHeaders)
	}
}

func TestLoadConfigRevalidateHeadersErrors(t *testing.T) {
	const secret = "s3cr3t-value"
	up := func(settings string) string {
		return "upstreams:\n  github:\n    url: https://api.github.com\n    revalidate_headers:" + settings + "\n"
	}
	tests := []struct {
		name string
		file string
		want []string // substrings of the error
	}{
		{name: "list", file: up(" [\"Bearer " + secret + "\"]"), want: []string{`cachegate.yaml:4: upstreams.github.revalidate_headers: want a mapping of header names to values`}},
		{name: "bad name", file: up("\n      \"X Key\": " + secret), want: []string{`cachegate.yaml:5: upstreams.github.revalidate_headers["X Key"]: bad header name "X Key": want a token`}},
		{name: "host", file: up("\n      host: " + secret), want: []string{`upstreams.github.revalidate_headers.host: header Host cannot be set`}},
		{name: "conditional", file: up("\n      If-None-Match: " + secret), want: []string{`revalidate_headers.If-None-Match: header If-None-Match cannot be set: the revalidation or the connection sets it`}},
		{name: "cachegate header", file: up("\n      X-Cachegate-Expire-After: " + secret), want: []string{`header X-Cachegate-Expire-After cannot be set`}},
		{name: "empty value", file: up("\n      Authorization:"), want: []string{`revalidate_headers.Authorization: want the header's value as a non-empty string`}},
		{name: "list value", file: up("\n      Authorization: [" + secret + "]"), want: []string{`revalidate_headers.Authorization: want the header's value as a non-empty string (not shown here`}},
		{name: "line break", file: up("\n      Authorization: \"Bearer " + secret + "\\r\\nX: y\""), want: []string{`revalidate_headers.Authorization: the value holds a line break or NUL`}},
		{name: "twice", file: up("\n      authorization: " + secret + "\n      Authorization: " + secret), want: []string{`cachegate.yaml:6: upstreams.github.revalidate_headers.Authorization: header Authorization given twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.file, nil)
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("loadConfig: %T %v, want a *configError", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %v\nwant it to contain\n  %v", err, w)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the header's value: %v", err)
			}
		})
	}
}
