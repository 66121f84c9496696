// Package expr compiles and evaluates the per-upstream key and filter
// expressions (CEL, github.com/google/cel-go): cachegate's stand-ins for
// requests-cache's key_fn and filter_fn. It is the only package that
// imports cel-go.
//
// An expression sees request (method, url {scheme, host, path, query},
// query, headers) and, for filters, response (status, headers, size). Both
// are compiled and type-checked once, at startup; evaluation reuses
// pooled state and builds the query and header maps only when the
// expression reads them.
package expr

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
)

// Redacted is what an expression sees in place of a secret's value.
const Redacted = "REDACTED"

// Input is the request an expression is evaluated for.
type Input struct {
	// Method is the method as cached.
	Method string
	// URL is the upstream URL; Query, when not empty, is the raw query an
	// expression sees in its place (normalized, secrets redacted).
	URL   *url.URL
	Query string
	// Header is the client's request header.
	Header http.Header
	// Secrets, when set, names the query parameters and headers whose
	// values an expression sees as Redacted: what it gives is shown by
	// the admin API, and a secret must never be.
	Secrets Secrets
}

// Secrets says which names are secret. An interface rather than a func,
// so that the gateway's upstream passes itself without allocating.
type Secrets interface {
	Secret(name string) bool
}

// Request is what an expression sees as request.
type Request struct {
	// Method is the client's method, upper case.
	Method string `cel:"method"`
	// URL is the upstream URL the request goes to.
	URL URL `cel:"url"`
	// Query holds the first value of each query parameter.
	Query map[string]string `cel:"query"`
	// Headers holds the request headers by lower-cased name, the values
	// of repeated fields joined with ", ".
	Headers map[string]string `cel:"headers"`
}

// URL is request.url.
type URL struct {
	Scheme string `cel:"scheme"`
	Host   string `cel:"host"`
	// Path is the escaped path, as sent to the upstream.
	Path string `cel:"path"`
	// Query is the raw query string, without '?'.
	Query string `cel:"query"`
}

// Response is what a filter sees as response.
type Response struct {
	Status  int               `cel:"status"`
	Headers map[string]string `cel:"headers"`
	// Size is the body's length in bytes.
	Size int64 `cel:"size"`
}

// Error is a compile error: an expression that does not parse, does not
// type-check, or gives the wrong type. Line and Column (both from 1) place
// it in the expression's text.
type Error struct {
	Line, Column int
	Msg          string
}

func (e *Error) Error() string { return fmt.Sprintf("at %d:%d: %s", e.Line, e.Column, e.Msg) }

// needs says which parts of the request and response an expression reads,
// so the maps it does not read are never built.
type needs struct {
	query, reqHeaders, respHeaders, size bool
	// headerNames, when not nil, are the only request headers read
	// (lower case, with canonical names beside them): the map holds
	// just them, rather than every header lower-cased.
	headerNames, canonical []string
}

// program is a compiled, checked expression.
type program struct {
	src   string
	prg   cel.Program
	needs needs
}

// Key is a compiled key expression; it gives a string.
type Key struct{ program }

// Filter is a compiled filter expression; it gives a bool.
type Filter struct{ program }

var (
	envOnce sync.Once
	env     *cel.Env
	envErr  error
)

func environment() (*cel.Env, error) {
	envOnce.Do(func() {
		env, envErr = cel.NewEnv(
			ext.NativeTypes(reflect.TypeFor[Request](), reflect.TypeFor[Response](), ext.ParseStructTags(true)),
			cel.Variable("request", cel.ObjectType("expr.Request")),
			cel.Variable("response", cel.ObjectType("expr.Response")),
			cel.OptionalTypes(),
			ext.Strings(),
		)
	})
	return env, envErr
}

// CompileKey compiles a key expression, which must give a string and may
// read request only. Errors are *Error.
func CompileKey(src string) (*Key, error) {
	p, err := compile(src, cel.StringType, false)
	if err != nil {
		return nil, err
	}
	return &Key{p}, nil
}

// CompileFilter compiles a filter expression, which must give a bool and
// may read request and response. Errors are *Error.
func CompileFilter(src string) (*Filter, error) {
	p, err := compile(src, cel.BoolType, true)
	if err != nil {
		return nil, err
	}
	return &Filter{p}, nil
}

func compile(src string, want *cel.Type, response bool) (program, error) {
	e, err := environment()
	if err != nil {
		return program{}, fmt.Errorf("expr: environment: %w", err)
	}
	if strings.TrimSpace(src) == "" {
		return program{}, &Error{Line: 1, Column: 1, Msg: "the expression is empty"}
	}
	checked, iss := e.Compile(src)
	if iss != nil && iss.Err() != nil {
		first := iss.Errors()[0]
		return program{}, &Error{Line: max(first.Location.Line(), 1), Column: first.Location.Column() + 1, Msg: first.Message}
	}
	if got := checked.OutputType(); !got.IsExactType(want) {
		return program{}, &Error{Line: 1, Column: 1, Msg: fmt.Sprintf("the expression gives %s, want %s", got, want)}
	}
	n, usesResponse := references(checked.NativeRep())
	if usesResponse && !response {
		return program{}, &Error{Line: 1, Column: 1, Msg: "a key expression cannot read response: the key is needed before there is one"}
	}
	prg, err := e.Program(checked, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return program{}, &Error{Line: 1, Column: 1, Msg: err.Error()}
	}
	return program{src: src, prg: prg, needs: n}, nil
}

// references walks a checked expression for what it reads of request and
// response. A variable used other than through one field (passed whole to
// a function, say) counts as reading all of it.
func references(a *ast.AST) (n needs, usesResponse bool) {
	for _, id := range ast.MatchDescendants(ast.NavigateAST(a), ast.KindMatcher(ast.IdentKind)) {
		name := id.AsIdent()
		if name != "request" && name != "response" {
			continue
		}
		field := ""
		if parent, ok := id.Parent(); ok {
			switch parent.Kind() {
			case ast.SelectKind:
				field = parent.AsSelect().FieldName()
			case ast.CallKind:
				// request.?headers is _?._(request, "headers").
				if c := parent.AsCall(); c.FunctionName() == "_?._" && len(c.Args()) == 2 && c.Args()[1].Kind() == ast.LiteralKind {
					if s, ok := c.Args()[1].AsLiteral().Value().(string); ok {
						field = s
					}
				}
			}
		}
		if name == "response" {
			usesResponse = true
			if field == "" || field == "headers" {
				n.respHeaders = true
			}
			if field == "" || field == "size" {
				n.size = true
			}
			continue
		}
		switch field {
		case "query":
			n.query = true
		case "headers":
			if !n.reqHeaders {
				n.reqHeaders = true
				n.headerNames = []string{}
			}
			if n.headerNames == nil {
				continue // every header is read already
			}
			name, ok := constantKey(id)
			if !ok {
				n.headerNames = nil
				continue
			}
			// Names are lower case in the map: another is never there.
			if name == strings.ToLower(name) && !slices.Contains(n.headerNames, name) {
				n.headerNames = append(n.headerNames, name)
				n.canonical = append(n.canonical, textproto.CanonicalMIMEHeaderKey(name))
			}
		case "method", "url":
		default:
			n.query, n.reqHeaders, n.headerNames = true, true, nil
		}
	}
	if n.headerNames == nil {
		n.canonical = nil
	}
	return n, usesResponse
}

// constantKey returns the header name when the request.headers that the
// identifier id starts is only looked up by a constant: headers["x-a"],
// headers[?"x-a"], "x-a" in headers, headers.x_a, headers.?x_a.
func constantKey(id ast.NavigableExpr) (string, bool) {
	sel, ok := id.Parent()
	if !ok {
		return "", false
	}
	use, ok := sel.Parent()
	if !ok {
		return "", false
	}
	literal := func(e ast.Expr) (string, bool) {
		if e.Kind() != ast.LiteralKind {
			return "", false
		}
		s, ok := e.AsLiteral().Value().(string)
		return s, ok
	}
	switch use.Kind() {
	case ast.SelectKind:
		return use.AsSelect().FieldName(), true
	case ast.CallKind:
		c := use.AsCall()
		args := c.Args()
		if len(args) != 2 {
			return "", false
		}
		switch c.FunctionName() {
		case operators.Index, operators.OptIndex, operators.OptSelect:
			if args[0].ID() == sel.ID() {
				return literal(args[1])
			}
		case operators.In:
			if args[1].ID() == sel.ID() {
				return literal(args[0])
			}
		}
	}
	return "", false
}

// String returns the expression's source; "" for a nil Key.
func (k *Key) String() string {
	if k == nil {
		return ""
	}
	return k.src
}

// String returns the expression's source; "" for a nil Filter.
func (f *Filter) String() string {
	if f == nil {
		return ""
	}
	return f.src
}

// ReadsHeaders reports whether the expression reads the request's headers:
// a key that does not depends on nothing but the method and URL, so it may
// be memoized by request line.
func (p *program) ReadsHeaders() bool { return p.needs.reqHeaders }

// ReadsSize reports whether the filter reads response.size: when the size
// is not known before the body is read, it must wait for the body.
func (f *Filter) ReadsSize() bool { return f.needs.size }

// state is the per-evaluation scratch space, pooled: its maps keep their
// buckets between evaluations.
type state struct {
	req  Request
	resp Response
	// reqp and respp are the activation's values, boxed once.
	reqp, respp any
}

// ResolveName makes a state the evaluation's activation without a map.
func (s *state) ResolveName(name string) (any, bool) {
	switch name {
	case "request":
		return s.reqp, true
	case "response":
		return s.respp, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (s *state) Parent() interpreter.Activation { return nil }

var states = sync.Pool{New: func() any {
	s := &state{}
	s.reqp, s.respp = &s.req, &s.resp
	return s
}}

func getState(n needs, in *Input) *state {
	s := states.Get().(*state)
	u := in.URL
	s.req.Method = in.Method
	query := in.Query
	if query == "" {
		query = u.RawQuery
	}
	s.req.URL = URL{Scheme: u.Scheme, Host: u.Host, Path: u.EscapedPath(), Query: query}
	s.req.Query = fillQuery(s.req.Query, n.query, u.RawQuery, in.Secrets)
	if n.headerNames != nil {
		s.req.Headers = fillNamed(s.req.Headers, n.headerNames, n.canonical, in.Header, in.Secrets)
	} else {
		s.req.Headers = fillHeaders(s.req.Headers, n.reqHeaders, in.Header, in.Secrets)
	}
	return s
}

func putState(s *state) {
	s.req.URL = URL{}
	s.resp.Status, s.resp.Size = 0, 0
	states.Put(s)
}

// fillQuery refills m with the first value of each parameter of raw, or
// empties it when the expression does not read the query.
func fillQuery(m map[string]string, need bool, raw string, secret Secrets) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	clear(m)
	if !need {
		return m
	}
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		if dk, err := url.QueryUnescape(k); err == nil {
			k = dk
		}
		if dv, err := url.QueryUnescape(v); err == nil {
			v = dv
		}
		if _, seen := m[k]; !seen {
			if secret != nil && secret.Secret(k) {
				v = Redacted
			}
			m[k] = v
		}
	}
	return m
}

// fillNamed refills m with the headers named, and no others.
func fillNamed(m map[string]string, names, canonical []string, h http.Header, secret Secrets) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	clear(m)
	for i, name := range names {
		if v := h[canonical[i]]; len(v) > 0 {
			m[name] = headerValue(canonical[i], v, secret)
		}
	}
	return m
}

func headerValue(name string, v []string, secret Secrets) string {
	if secret != nil && secret.Secret(name) {
		return Redacted
	}
	return strings.Join(v, ", ")
}

// fillHeaders refills m with h by lower-cased name, values joined.
func fillHeaders(m map[string]string, need bool, h http.Header, secret Secrets) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	clear(m)
	if !need {
		return m
	}
	for k, v := range h {
		m[strings.ToLower(k)] = headerValue(k, v, secret)
	}
	return m
}

// Eval gives the key for a request. An error is the expression's failure
// at run time (a missing map key, say).
func (k *Key) Eval(in *Input) (string, error) {
	s := getState(k.needs, in)
	defer putState(s)
	out, _, err := k.prg.Eval(s)
	if err != nil {
		return "", err
	}
	str, ok := out.Value().(string)
	if !ok {
		return "", errors.New("the expression did not give a string")
	}
	return str, nil
}

// Eval says whether a response with this status, header and body size to
// the request may be stored. An error is the expression's failure at run
// time. The response's headers are seen as they are: a filter gives only
// a bool.
func (f *Filter) Eval(in *Input, status int, respHeader http.Header, size int64) (bool, error) {
	s := getState(f.needs, in)
	defer putState(s)
	s.resp.Status, s.resp.Size = status, size
	s.resp.Headers = fillHeaders(s.resp.Headers, f.needs.respHeaders, respHeader, nil)
	out, _, err := f.prg.Eval(s)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, errors.New("the expression did not give a bool")
	}
	return b, nil
}
