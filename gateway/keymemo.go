package gateway

import (
	"net/http"
	"sync"

	"github.com/cachegate/cachegate/cache"
)

// keyMemo remembers the keys of recent requests that depend on nothing but
// their method, path and query, so a repeated request skips parsing,
// normalizing and hashing. It holds at most keyMemoSize keys and starts
// afresh when full: a crude bound, but the memo only saves work, it never
// decides anything. A plain map under a read-write lock: a lookup
// allocates nothing, unlike a sync.Map's boxed key.
type keyMemo struct {
	mu sync.RWMutex                 // protects m
	m  map[keyMemoKey]*keyedRequest // shared, read-only entries
}

// keyMemoKey is the request line's target (path and query as sent).
type keyMemoKey string

const keyMemoSize = 16384

func (k *keyMemo) get(key keyMemoKey) *keyedRequest {
	k.mu.RLock()
	kr := k.m[key]
	k.mu.RUnlock()
	return kr
}

func (k *keyMemo) put(key keyMemoKey, kr *keyedRequest, reqMethod string) {
	t := *kr
	t.header = nil
	t.rules.Header = nil
	t.reqMethod = reqMethod
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil || len(k.m) >= keyMemoSize {
		k.m = make(map[keyMemoKey]*keyedRequest)
	}
	k.m[key] = &t
}

// forHeader returns a copy of a memoized key for a request with header h.
func (kr *keyedRequest) forHeader(h http.Header) *keyedRequest {
	c := *kr
	c.header = h
	c.rules.Header = h
	return &c
}

// memoable reports whether the key of r depends only on its method, path
// and query: no body, no matched headers, no key expression that reads
// headers, no credentials, no per-request expiry (X-Cachegate-Expire-After,
// or Cache-Control's max-age).
func (u *upstream) memoable(r *http.Request) bool {
	p := &u.Policy
	if (r.Body != nil && r.Body != http.NoBody) || p.MatchAllHeaders || (len(p.MatchHeaders) > 0 && !p.Key.IgnoreHeaders) {
		return false
	}
	if u.KeyExpr != nil && u.KeyExpr.ReadsHeaders() {
		return false
	}
	h := r.Header
	for _, name := range cache.CredentialHeaders {
		if len(h[name]) != 0 {
			return false
		}
	}
	return len(h[cache.ExpireAfterHeader]) == 0 && len(h["Cache-Control"]) == 0
}
