package main

import "testing"

func TestLoadConfigExpressions(t *testing.T) {
	tests := []struct {
		name, file           string
		key, filter          string
		ignoreBody, keyReads bool
	}{
		{
			name: "scalar key and filter",
			file: "upstreams:\n  api:\n    url: http://x\n    key: 'request.url.path + \"?\" + request.query[\"id\"]'\n" +
				"    filter: 'response.status == 200 && !(\"x-debug\" in request.headers)'\n",
			key:    `request.url.path + "?" + request.query["id"]`,
			filter: `response.status == 200 && !("x-debug" in request.headers)`,
		},
		{
			name:       "key mapping",
			file:       "upstreams:\n  api:\n    url: http://x\n    key:\n      ignore_body: true\n      expression: request.headers[\"x-tenant\"]\n",
			key:        `request.headers["x-tenant"]`,
			ignoreBody: true, keyReads: true,
		},
		{
			name: "no expressions",
			file: "upstreams:\n  api:\n    url: http://x\n    key: {ignore_query: true}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := load(t, tt.file, nil)
			if err != nil {
				t.Fatal(err)
			}
			u := cfg.Upstreams[0]
			if got := u.KeyExpr.String(); got != tt.key {
				t.Errorf("key %q, want %q", got, tt.key)
			}
			if got := u.FilterExpr.String(); got != tt.filter {
				t.Errorf("filter %q, want %q", got, tt.filter)
			}
			if u.Policy.Key.IgnoreBody != tt.ignoreBody {
				t.Errorf("ignore_body %v, want %v", u.Policy.Key.IgnoreBody, tt.ignoreBody)
			}
			if u.KeyExpr != nil && u.KeyExpr.ReadsHeaders() != tt.keyReads {
				t.Errorf("ReadsHeaders %v, want %v", u.KeyExpr.ReadsHeaders(), tt.keyReads)
			}
		})
	}
}
