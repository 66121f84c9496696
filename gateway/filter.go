package gateway

import (
	"net/http"

	"github.com/cachegate/cachegate/cache"
)

// FilterRule is the Decision.Rule (and so the Cache-Status detail) of a
// response that the upstream's filter expression kept out of the cache.
const FilterRule = "filter"

// filter applies the upstream's filter expression to a decision to store
// a response to kr, whose body has size bytes (-1: not known yet). It runs
// after the policy's own rules, so it can only refuse what they would
// store. An expression that fails at run time stores nothing: storing what
// the operator's rule could not judge might keep what it meant to refuse.
func (up *upstream) filter(kr *keyedRequest, dec cache.Decision, status int, h http.Header, size int64) cache.Decision {
	if up.FilterExpr == nil || !dec.Store {
		return dec
	}
	in := exprInput(up, kr.method, kr.target, kr.storedURL, kr.header)
	ok, err := up.FilterExpr.Eval(&in, status, h, size)
	switch {
	case err != nil:
		return cache.Decision{Rule: FilterRule, Reason: "the filter expression failed: " + err.Error()}
	case !ok:
		return cache.Decision{Rule: FilterRule, Reason: "the filter expression gave false"}
	}
	return dec
}

// filterNow reports whether the filter can judge a response before its
// body is read: when it has no use for the size, or the size is known.
func (up *upstream) filterNow(size int64) bool {
	return up.FilterExpr == nil || size >= 0 || !up.FilterExpr.ReadsSize()
}
