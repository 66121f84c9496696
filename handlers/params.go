package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/dustin/go-humanize"
)

// filterParams are the names of the entry filter, the same in query
// strings (GET /api/entries) and in the "filter" object of bulk bodies.
var filterParams = []string{
	"credentials", "set_cookie", "vary", "upstream", "url", "method", "status", "content_type", "freshness",
	"min_size", "max_size", "created_after", "created_before",
	"expires_after", "expires_before", "base_key", "reason",
}

// queryParams checks that r's query holds only accepted parameters, each
// at most once, and returns it. An unknown parameter is an error rather
// than silently ignored: a typo in "upstrem=github" must not turn a
// filtered bulk delete into a delete of everything.
func queryParams(r *http.Request, accepted ...string) (url.Values, error) {
	v := r.URL.Query()
	if err := checkNames(v, "query parameter", accepted, nil); err != nil {
		return nil, err
	}
	return v, nil
}

// checkNames reports names in v that are not accepted, and names given
// more than once unless repeatable.
func checkNames(v url.Values, what string, accepted, repeatable []string) error {
	var unknown []string
	for name, vals := range v {
		if !contains(accepted, name) {
			unknown = append(unknown, name)
			continue
		}
		if len(vals) > 1 && !contains(repeatable, name) {
			return badRequest("bad_parameter", fmt.Sprintf("%s %s is given %d times; give it once", what, name, len(vals)))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		s := ""
		if len(unknown) > 1 {
			s = "s"
		}
		acc := append([]string(nil), accepted...)
		sort.Strings(acc)
		return badRequest("unknown_parameter", fmt.Sprintf("unknown %s%s %s (accepted: %s)",
			what, s, strings.Join(unknown, ", "), strings.Join(acc, ", ")))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// paramError is a 400 naming the parameter, the bad value and what is
// accepted.
func paramError(name, value, accepted string) *Error {
	return badRequest("bad_parameter", fmt.Sprintf("parameter %s: %q is not accepted (accepted: %s)", name, value, accepted))
}

// parseFilter reads the filter parameters from v; prefix ("filter." in
// bodies) goes in front of names in error messages. Times in the filter
// are judged against now.
func parseFilter(v url.Values, prefix string, now time.Time) (cache.Filter, error) {
	f := cache.Filter{Now: now}
	get := func(name string) string { return strings.TrimSpace(v.Get(name)) }
	// true or false only, as the API documents them.
	truth := func(name string, dst *bool) error {
		switch s := get(name); s {
		case "":
		case "true", "false":
			*dst = s == "true"
		default:
			return paramError(prefix+name, s, "true, false")
		}
		return nil
	}
	if err := truth("credentials", &f.Credentials); err != nil {
		return f, err
	}
	if err := truth("set_cookie", &f.SetCookie); err != nil {
		return f, err
	}
	f.VaryOn = get("vary")
	f.Upstream = get("upstream")
	f.URL = get("url")
	f.Method = strings.ToUpper(get("method"))
	// Not trimmed: a rule's reason prefix ends in a space.
	f.Reason = v.Get("reason")
	f.BaseKey = get("base_key")
	if f.BaseKey != "" && !cache.ValidKey(f.BaseKey) {
		return f, paramError(prefix+"base_key", f.BaseKey, "a key: 1 to 128 characters of A-Z a-z 0-9 - _")
	}
	if s := get("status"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 100 || n > 999 {
			return f, paramError(prefix+"status", s, "an HTTP status code, 100 to 999")
		}
		f.Status = n
	}
	f.ContentType = strings.ToLower(get("content_type"))
	switch s := get("freshness"); s {
	case "":
	case "fresh", "expired", "stale":
		f.Freshness = cache.Freshness(s)
	default:
		return f, paramError(prefix+"freshness", s, "fresh, expired, stale (expired, with an ETag or Last-Modified to revalidate with)")
	}
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"min_size", &f.MinSize}, {"max_size", &f.MaxSize}} {
		if s := get(p.name); s != "" {
			n, err := humanize.ParseBytes(s)
			if err != nil || n > 1<<62 {
				return f, paramError(prefix+p.name, s, "a size in bytes, like 1024, 10KiB or 2MB")
			}
			*p.dst = int64(n)
		}
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{
		{"created_after", &f.CreatedAfter}, {"created_before", &f.CreatedBefore},
		{"expires_after", &f.ExpiresAfter}, {"expires_before", &f.ExpiresBefore},
	} {
		if s := get(p.name); s != "" {
			t, err := parseTime(s, now)
			if err != nil {
				return f, paramError(prefix+p.name, s, "an RFC 3339 time (2024-05-01T12:00:00Z), a date (2024-05-01), or a duration from now (-24h, 30m)")
			}
			*p.dst = t
		}
	}
	return f, nil
}

// parseTime reads an RFC 3339 time, a date (midnight UTC), or a signed Go
// duration relative to now ("-24h" is a day ago), so scripts need no date
// arithmetic.
func parseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return time.Time{}, err
	}
	return now.Add(d), nil
}

// parseBool reads an optional boolean parameter.
func parseBool(v url.Values, name string, def bool) (bool, error) {
	s := v.Get(name)
	if s == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return def, paramError(name, s, "true, false")
	}
	return b, nil
}

// maxBodyBytes caps JSON request bodies: a list of keys fits many times
// over, and nothing larger is ever needed outside imports.
const maxBodyBytes = 4 << 20

// decodeBody reads a JSON object from r's body into dst (a pointer to a
// struct). An empty body leaves dst as it is. Unknown fields are refused,
// naming the accepted ones, for the same reason as unknown parameters.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Message: fmt.Sprintf("the body is larger than %d bytes", maxBodyBytes)}
		}
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		msg := strings.TrimPrefix(err.Error(), "json: ")
		if strings.HasPrefix(msg, "unknown field") {
			msg += " (accepted: " + strings.Join(jsonFields(dst), ", ") + ")"
		}
		return badRequest("bad_body", "the body is not the JSON object expected: "+msg)
	}
	if dec.More() {
		return badRequest("bad_body", "the body holds more than one JSON value")
	}
	return nil
}

// jsonFields lists the JSON names of a struct's fields, embedded ones
// included, for error messages.
func jsonFields(v any) []string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			names = append(names, jsonFields(reflect.New(f.Type).Interface())...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// Selection picks the entries of a bulk operation: explicit keys, a
// filter, or both (entries must then pass both). All must be true to
// select everything in a destructive operation, so an empty body never
// deletes a whole cache by accident.
type Selection struct {
	Keys   []string                   `json:"keys,omitempty"`
	Filter map[string]json.RawMessage `json:"filter,omitempty"`
	All    bool                       `json:"all,omitempty"`
}

// maxKeys bounds an explicit key list.
const maxKeys = 10_000

// filter turns s into a cache.Filter judged at now. requireSome refuses an
// empty selection unless All is set.
func (s Selection) filter(now time.Time, requireSome bool) (cache.Filter, error) {
	v := url.Values{}
	for name, raw := range s.Filter {
		str, err := scalar(raw)
		if err != nil {
			return cache.Filter{}, badRequest("bad_body", fmt.Sprintf("filter.%s: %v", name, err))
		}
		// parseFilter trims every value: a blank one must not count as a
		// selection, or {"filter":{"upstream":" "}} would select everything.
		if str = strings.TrimSpace(str); str != "" {
			v.Set(name, str)
		}
	}
	if err := checkNames(v, "filter field", filterParams, nil); err != nil {
		return cache.Filter{}, err
	}
	f, err := parseFilter(v, "filter.", now)
	if err != nil {
		return f, err
	}
	if len(s.Keys) > maxKeys {
		return f, badRequest("bad_body", fmt.Sprintf("keys: %d keys, at most %d in one request", len(s.Keys), maxKeys))
	}
	for _, k := range s.Keys {
		if !cache.ValidKey(k) {
			return f, badRequest("bad_key", fmt.Sprintf("keys: %q is not a key (1 to 128 characters of A-Z a-z 0-9 - _)", k))
		}
	}
	f.Keys = s.Keys
	if s.All && (len(s.Keys) > 0 || len(v) > 0) {
		return f, badRequest("bad_body", "all: true selects every entry; leave out keys and filter, or all")
	}
	if requireSome && !s.All && f.SelectsAll() {
		return f, badRequest("empty_selection", "select entries with keys or filter, or give all: true to select every entry")
	}
	return f, nil
}

// scalar reads a JSON string, number or boolean as text.
func scalar(raw json.RawMessage) (string, error) {
	var x any
	if err := json.Unmarshal(raw, &x); err != nil {
		return "", err
	}
	switch x := x.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case float64, bool:
		return strings.TrimSpace(string(raw)), nil
	}
	return "", errors.New("want a string or a number")
}
