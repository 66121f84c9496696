// Package views holds the admin UI's templ components. They take plain
// view-model structs (defined here) and write HTML; they do no I/O and know
// nothing of backends or requests, so each can be rendered and checked in
// a test on its own.
//
// A page is a component that wraps its content in Page(l) with the Layout
// the handler built (handlers.API.layout), starts with PageHead, and uses
// the shared pieces: EmptyState for a list with nothing in it, Notice,
// Badge, Timestamp/LocalTime and the Bytes, Count, Percent, Ago and Expiry
// formatters, CSRFField in every POST form. Tables use the classes
// "table-wrap cards" and "data cards" with a data-label on each cell, so
// they become cards on a phone; numbers get class "num". Every element a
// test reads carries a data-testid. No inline script and no on*=
// attributes (the pages' CSP refuses them): behaviour goes in
// static/js/app.js, hung off data-* attributes. After editing a .templ
// file, run make templ (go tool templ generate) and commit both files.
package views

import "net/url"

// Layout is what the frame around every page shows: the header with the
// backend picker, the navigation and the signed-in state.
type Layout struct {
	// Title is the page's name, for <title>.
	Title string
	// Active is the navigation path of the current page ("/", "/backends");
	// its link is marked as the current one.
	Active string
	// Path is the current page's path and Query its query without
	// "backend": the backend picker submits back to the same page with the
	// same state and another backend.
	Path  string
	Query url.Values
	// Backends lists every configured backend for the picker, in order.
	Backends []BackendChoice
	// Backend is the name of the backend the page shows; DefaultBackend is
	// the one used when the URL names none (links leave it out).
	Backend        string
	DefaultBackend string
	// CSRFToken goes into <meta name="csrf-token"> and every form.
	CSRFToken string
	Auth      Auth
}

// Auth is the signed-in state the header shows.
type Auth struct {
	// TokenRequired is false on plain loopback without an admin token:
	// "local access", nothing to sign out of.
	TokenRequired bool
	// SignedIn is whether the request carries a valid session or token.
	SignedIn bool
}

// BackendChoice is one backend in the picker.
type BackendChoice struct {
	Name    string
	Kind    string // sqlite, mongodb, file, memory
	Entries int64
	Bytes   int64
	// Err is set when the backend could not be counted.
	Err string
}

// Link returns path with the page's backend in its query (left out for the
// default backend), so that navigating keeps the backend the user picked.
func (l Layout) Link(path string) string {
	return l.LinkWith(path, nil)
}

// LinkWith is Link with more query parameters.
func (l Layout) LinkWith(path string, q url.Values) string {
	v := url.Values{}
	for k, vs := range q {
		v[k] = append([]string(nil), vs...)
	}
	if l.Backend != "" && l.Backend != l.DefaultBackend {
		v.Set("backend", l.Backend)
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// NavItem is one entry of the main navigation.
type NavItem struct {
	Path, Label string
}

// Nav is the main navigation, in order. Pages that phase 2 adds are listed
// already so the frame does not change as they land.
var Nav = []NavItem{
	{"/", "Overview"},
	{"/entries", "Entries"},
	{"/jobs", "Jobs"},
	{"/upstreams", "Upstreams"},
	{"/backends", "Backends"},
	{"/explain", "Explain"},
}

// ErrorView is a page-level error: what went wrong, in words, and what to
// do about it.
type ErrorView struct {
	Status int
	Title  string
	Hint   string
}

// SignInView is the sign-in page.
type SignInView struct {
	CSRFToken string
	// Next is the local path to return to after signing in.
	Next string
	// Error is the message for a failed attempt ("" for none); SignedOut
	// says the user just signed out.
	Error     string
	SignedOut bool
}

// BackendRow is one backend on the Backends page.
type BackendRow struct {
	Name string
	Kind string
	// DSN has its credentials masked.
	DSN string
	// SameAs names the backend this one is an alias of (one DSN named
	// twice is opened once).
	SameAs   string
	Entries  int64
	Bytes    int64
	MaxBytes int64
	Healthy  bool
	// Err says why it is not healthy.
	Err       string
	CanVacuum bool
}
