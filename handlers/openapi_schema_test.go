package handlers_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/cachegate/cachegate/handlers"
)

// schemaChecker checks a decoded JSON value against a schema of
// openapi.json: its types, and that an object has no field the schema
// does not name (unless it allows additionalProperties). It knows the
// parts of JSON Schema the document uses.
type schemaChecker struct {
	schemas map[string]any
	errs    []string
}

func newSchemaChecker(t *testing.T) *schemaChecker {
	t.Helper()
	var doc struct {
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(handlers.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	return &schemaChecker{schemas: doc.Components.Schemas}
}

func (c *schemaChecker) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

func (c *schemaChecker) resolve(s map[string]any) map[string]any {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		next, ok := c.schemas[name].(map[string]any)
		if !ok {
			c.errorf("openapi.json: %s does not resolve", ref)
			return map[string]any{"additionalProperties": true}
		}
		s = next
	}
}

func (c *schemaChecker) check(path string, v any, schema map[string]any) {
	s := c.resolve(schema)
	if v == nil {
		if s["nullable"] != true {
			c.errorf("%s: null, and the schema does not allow it", path)
		}
		return
	}
	if alts, ok := s["oneOf"].([]any); ok {
		for _, alt := range alts {
			if c.matches(v, alt.(map[string]any)) {
				return
			}
		}
		c.errorf("%s: %v matches none of the schema's oneOf", path, v)
		return
	}
	typ, _ := s["type"].(string)
	switch x := v.(type) {
	case map[string]any:
		if typ != "object" && typ != "" {
			c.errorf("%s: an object, the schema says %s", path, typ)
			return
		}
		props, _ := s["properties"].(map[string]any)
		extra, _ := s["additionalProperties"].(map[string]any)
		for k, fv := range x {
			ps, ok := props[k].(map[string]any)
			switch {
			case ok:
				c.check(path+"."+k, fv, ps)
			case extra != nil:
				c.check(path+"."+k, fv, extra)
			case s["additionalProperties"] == true:
			default:
				c.errorf("%s: field %q is not in the schema", path, k)
			}
		}
	case []any:
		if typ != "array" {
			c.errorf("%s: an array, the schema says %q", path, typ)
			return
		}
		items, _ := s["items"].(map[string]any)
		for i, iv := range x {
			if items != nil {
				c.check(fmt.Sprintf("%s[%d]", path, i), iv, items)
			}
		}
	case string:
		if typ != "string" {
			c.errorf("%s: a string (%q), the schema says %q", path, x, typ)
		}
	case bool:
		if typ != "boolean" {
			c.errorf("%s: a boolean, the schema says %q", path, typ)
		}
	case float64:
		if typ != "number" && !(typ == "integer" && x == math.Trunc(x)) {
			c.errorf("%s: the number %v, the schema says %q", path, x, typ)
		}
	}
}

// matches reports whether v satisfies s, without reporting.
func (c *schemaChecker) matches(v any, s map[string]any) bool {
	probe := &schemaChecker{schemas: c.schemas}
	probe.check("", v, s)
	return len(probe.errs) == 0
}

// GET /api/upstreams answers what openapi.json says it does: every field
// of every upstream, with every setting in force, is in the Upstream
// schema with its type.
func TestAPIUpstreamsMatchesItsSchema(t *testing.T) {
	s := newRuleSite(t)
	code, body := s.raw(t, "/api/upstreams")
	if code != http.StatusOK {
		t.Fatalf("GET /api/upstreams: %d %s", code, body)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if ups, _ := v["upstreams"].([]any); len(ups) == 0 {
		t.Fatalf("no upstreams in %s", body)
	}
	c := newSchemaChecker(t)
	// The checker itself: a field the schema lacks and a wrong type fail.
	bad := &schemaChecker{schemas: c.schemas}
	bad.check("bad", map[string]any{"name": 1.0, "no_such_field": true}, map[string]any{"$ref": "#/components/schemas/Upstream"})
	if len(bad.errs) != 2 {
		t.Fatalf("the checker found %q in a wrong upstream, want 2 errors", bad.errs)
	}
	c.check("upstreams", v, map[string]any{
		"type": "object",
		"properties": map[string]any{
			"upstreams": map[string]any{"type": "array", "items": map[string]any{"$ref": "#/components/schemas/Upstream"}},
			"config":    map[string]any{"$ref": "#/components/schemas/ConfigStatus"},
		},
	})
	for _, e := range c.errs {
		t.Error(e)
	}
}
