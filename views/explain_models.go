package views

import "time"

// ExplainView is the Explain page: the form, and the explanation once a
// URL was given.
type ExplainView struct {
	Form ExplainForm
	// Upstreams are the configured upstreams for the form's picker, in
	// order.
	Upstreams []UpstreamChoice
	// Error is what was wrong with the form's values, Hint what to do; the
	// form is shown again with them.
	Error, Hint string
	// Result is nil until a URL was given and explained.
	Result *ExplainModel
}

// ExplainForm holds the form's values as the user typed them.
type ExplainForm struct {
	URL, Upstream, Method string
	// Headers is the textarea: one "Name: value" a line.
	Headers string
}

// UpstreamChoice is one upstream in the Explain form's picker.
type UpstreamChoice struct {
	Name, URL string
}

// ExplainModel is what the gateway would do with one request. It is the
// content of the Explanation component, which the entry detail page shows
// too.
type ExplainModel struct {
	Upstream, Backend, Mode, Method string
	// URL is the upstream URL as stored (ignored parameters redacted).
	URL string
	Key string
	// KeyParts are the key's ingredients, credentials hashed.
	KeyParts []KeyPartRow
	// Cacheable is false when the request passes through; NotCacheable
	// says why.
	Cacheable    bool
	NotCacheable string
	// Assumed says which response the decision is for.
	Assumed string
	// Store is whether the response would be stored; Rule and Reason say
	// why, Expires when it would expire (Never: it would not).
	Store        bool
	Rule, Reason string
	Expires      time.Time
	Never        bool
	// Chain is the expiry rules in the order they are tried.
	Chain []ChainRow
	// Expressions is what the upstream's key and filter expressions
	// gave; empty when it has none.
	Expressions []ExpressionRow
	// LastNotStored is the last response fetched for this key that was
	// not stored, if the gateway remembers one.
	LastNotStored *RefusalRow
	// Cached is the entry stored now, if any.
	Cached *CachedRow
	// Now is when the explanation was made, for relative times.
	Now time.Time
	// Embedded is set on an entry's own page, which shows the request and
	// is the entry: the explanation leaves out both.
	Embedded bool
}

// ExpressionRow is what one of an upstream's expressions gave.
type ExpressionRow struct {
	// Field is "key" or "filter".
	Field, Expression string
	// Result is what it gave, as text; Error why it failed instead.
	Result, Error string
	// Input says which response a filter was given.
	Input string
}

// KeyPartRow is one ingredient of a cache key.
type KeyPartRow struct {
	Part, Value string
}

// ChainRow is one rule of the expiry chain.
type ChainRow struct {
	Rule, Pattern, Expire, Note string
	// State is "won", "no_match", "also_matches" or "not_reached".
	State string
	Won   bool
}

// RefusalRow is a response that was not stored.
type RefusalRow struct {
	Status       int
	Rule, Reason string
	At           time.Time
}

// CachedRow is the entry a request would find now.
type CachedRow struct {
	Key string
	// Link opens the entry's detail page.
	Link  string
	Fresh bool
	// Expires is zero for an entry that never expires.
	Expires time.Time
	AgeSec  int64
	Hits    int64
	// Stored is the reason it was stored with its expiry; Answer is HIT,
	// STALE, REVALIDATE or REFETCH, and Why says why.
	Stored, Answer, Why string
	Varies              bool
	Created, LastHit    time.Time
}

// hasWinner reports whether a rule of the chain decided.
func hasWinner(chain []ChainRow) bool {
	for _, s := range chain {
		if s.Won {
			return true
		}
	}
	return false
}

// expiresFor words when a response stored now would expire.
func expiresFor(m ExplainModel) string {
	if m.Expires.IsZero() || !m.Expires.After(m.Now) {
		return "stale at once (revalidated on the next request)"
	}
	// A second of slack: the gateway computed Expires a moment before Now.
	return "fresh for " + span(m.Expires.Sub(m.Now)+time.Second)
}

// secs turns seconds into a duration.
func secs(n int64) time.Duration { return time.Duration(n) * time.Second }
