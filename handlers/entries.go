package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/go-chi/chi/v5"
)

// entryJSON is an entry in listings.
type entryJSON struct {
	Key         string     `json:"key"`
	BaseKey     string     `json:"base_key"`
	Upstream    string     `json:"upstream"`
	Method      string     `json:"method"`
	URL         string     `json:"url"`
	Status      int        `json:"status"`
	ContentType string     `json:"content_type"`
	Size        int64      `json:"size"`
	Created     time.Time  `json:"created"`
	Expires     *time.Time `json:"expires"` // null: never expires
	Fresh       bool       `json:"fresh"`
	TTLSeconds  *int64     `json:"ttl_seconds"` // negative once expired; null: never expires
	Hits        int64      `json:"hits"`
	LastHit     *time.Time `json:"last_hit"`
	ETag        string     `json:"etag,omitempty"`
	Reason      string     `json:"reason"`
}

func toEntryJSON(e *cache.Entry, now time.Time) entryJSON {
	j := entryJSON{
		Key: e.Key, BaseKey: e.BaseKey, Upstream: e.Upstream, Method: e.Method, URL: e.URL,
		Status: e.Status, ContentType: e.ContentType, Size: e.Size, Created: e.Created,
		Fresh: !e.IsExpired(now), Hits: e.Hits, ETag: e.ETag, Reason: e.Reason,
	}
	if !e.Never() {
		t := e.Expires
		j.Expires = &t
		ttl := int64(e.Expires.Sub(now) / time.Second)
		j.TTLSeconds = &ttl
	}
	if !e.LastHit.IsZero() {
		t := e.LastHit
		j.LastHit = &t
	}
	return j
}

// entryList is the answer of GET /api/entries.
type entryList struct {
	Backend string      `json:"backend"`
	Entries []entryJSON `json:"entries"`
	// Next is the cursor of the following page; empty on the last.
	Next  string `json:"next"`
	Limit int    `json:"limit"`
	// Total counts the whole match, every page; null with count=false.
	Total *cache.Totals `json:"total"`
}

// listParams are the query parameters of GET /api/entries.
var listParams = append([]string{"backend", "sort", "order", "limit", "next", "count"}, filterParams...)

// handleEntryList answers one page of entries, filtered and sorted, with
// the totals of the whole match.
func (a *API) handleEntryList(w http.ResponseWriter, r *http.Request) {
	v, name, b, err := a.queryBackend(r, listParams...)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	now := time.Now()
	q, err := parseListQuery(v, now)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	withCount, err := parseBool(v, "count", true)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	page, err := b.List(r.Context(), q)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	out := entryList{Backend: name, Entries: make([]entryJSON, 0, len(page.Entries)), Next: page.Next, Limit: q.PageLimit()}
	for _, e := range page.Entries {
		out.Entries = append(out.Entries, toEntryJSON(e, now))
	}
	if withCount {
		t, err := b.Count(r.Context(), q.Filter)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		out.Total = &t
	}
	writeJSON(w, http.StatusOK, out)
}

// parseListQuery reads filter, sort, order, limit and cursor.
func parseListQuery(v url.Values, now time.Time) (cache.Query, error) {
	var q cache.Query
	f, err := parseFilter(v, "", now)
	if err != nil {
		return q, err
	}
	q.Filter = f
	sortField := v.Get("sort")
	if sortField != "" && !contains(sortFieldNames(), sortField) {
		return q, paramError("sort", sortField, "created, expires, size, url, hits")
	}
	q.Sort.Field = cache.SortField(sortField)
	// Descending by default except for URLs, which read best A to Z: the
	// newest, largest, most hit or latest-expiring entries come first.
	q.Sort.Desc = sortField != string(cache.SortURL)
	switch o := v.Get("order"); o {
	case "":
	case "asc":
		q.Sort.Desc = false
	case "desc":
		q.Sort.Desc = true
	default:
		return q, paramError("order", o, "asc, desc")
	}
	if q.Sort.Field == "" {
		q.Sort.Field = cache.SortCreated
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > cache.MaxLimit {
			return q, paramError("limit", s, "1 to "+strconv.Itoa(cache.MaxLimit)+" (default "+strconv.Itoa(cache.DefaultLimit)+")")
		}
		q.Limit = n
	}
	q.Cursor = v.Get("next")
	if q.Cursor != "" {
		if _, err := cache.ParseCursor(q.Cursor, q.Sort); err != nil {
			return q, badRequest("bad_parameter", "parameter next: "+trimInvalid(err))
		}
	}
	return q, nil
}

func trimInvalid(err error) string {
	s := err.Error()
	if suffix := ": " + cache.ErrInvalid.Error(); len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)]
	}
	return s
}

func sortFieldNames() []string {
	names := make([]string, len(cache.SortFields))
	for i, f := range cache.SortFields {
		names[i] = string(f)
	}
	return names
}

// entryKey reads and checks the {key} of the path. Keys are opaque,
// URL-safe strings; anything else is refused before it reaches a backend.
func entryKey(r *http.Request) (string, error) {
	key := chi.URLParam(r, "key")
	if !cache.ValidKey(key) {
		return "", badRequest("bad_key", "the key in the path must be 1 to 128 characters of A-Z a-z 0-9 - _")
	}
	return key, nil
}

// keyAndBackend reads the path's key and the ?backend= of a request on
// one entry.
func (a *API) keyAndBackend(r *http.Request) (string, cache.Backend, error) {
	_, _, b, err := a.queryBackend(r, "backend")
	if err != nil {
		return "", nil, err
	}
	key, err := entryKey(r)
	return key, b, err
}

// errEntryNotFound is the 404 for a key that is not stored.
func errEntryNotFound(key string) *Error {
	return &Error{Status: http.StatusNotFound, Code: "entry_not_found", Message: "no entry with key " + quote(key)}
}

// entryDetail is the answer of GET /api/entries/{key}.
type entryDetail struct {
	entryJSON
	RequestTime    *time.Time  `json:"request_time"`
	AgeSeconds     int64       `json:"age_seconds"`
	RequestHeaders http.Header `json:"request_headers"`
	Headers        http.Header `json:"headers"`
	LastModified   string      `json:"last_modified,omitempty"`
	// Explanation is what the gateway would do with this entry's request
	// now: the key parts, the rule and expiry, and what it would answer.
	Explanation  *gateway.Explanation `json:"explanation,omitempty"`
	ExplainError string               `json:"explain_error,omitempty"`
}

// entry reads the entry the request's {key} and ?backend= name: a
// missing one is a 404.
func (a *API) entry(r *http.Request) (*cache.Entry, error) {
	key, b, err := a.keyAndBackend(r)
	if err != nil {
		return nil, err
	}
	e, ok, err := b.Get(r.Context(), key)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errEntryNotFound(key)
	}
	return e, nil
}

// handleEntryGet answers an entry's metadata, headers and explanation.
func (a *API) handleEntryGet(w http.ResponseWriter, r *http.Request) {
	e, err := a.entry(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	now := time.Now()
	d := entryDetail{
		entryJSON: toEntryJSON(e, now), AgeSeconds: int64(now.Sub(e.Created) / time.Second),
		RequestHeaders: redact(e.RequestHeader), Headers: redact(e.Header), LastModified: e.LastModified,
	}
	if !e.RequestTime.IsZero() {
		t := e.RequestTime
		d.RequestTime = &t
	}
	x, err := a.gw.Explain(r.Context(), e.Upstream, e.URL, e.Method, e.RequestHeader.Clone())
	if err != nil {
		// An entry of an upstream no longer configured, say: the entry
		// is still worth showing.
		d.ExplainError = err.Error()
	} else {
		d.Explanation = &x
	}
	writeJSON(w, http.StatusOK, d)
}

// sensitive are headers whose values are never shown. The gateway never
// stores them; entries imported from elsewhere might carry them.
var sensitive = slices.Concat(cache.CredentialHeaders, cache.SetCookieHeaders)

func redact(h http.Header) http.Header {
	h = h.Clone()
	if h == nil {
		return http.Header{}
	}
	for _, name := range sensitive {
		if _, ok := h[name]; ok {
			h[name] = []string{gateway.Redacted}
		}
	}
	return h
}

// handleEntryBody answers the stored body with its content type.
func (a *API) handleEntryBody(w http.ResponseWriter, r *http.Request) {
	e, err := a.entry(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	ct := e.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	writeStoredBody(w, r, e, ct)
}

// handleEntryDelete removes one entry.
func (a *API) handleEntryDelete(w http.ResponseWriter, r *http.Request) {
	key, b, err := a.keyAndBackend(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	ok, err := b.Delete(r.Context(), key)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if !ok {
		a.writeError(w, r, errEntryNotFound(key))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": key, "deleted": true})
}

// handleEntryRevalidate asks the upstream about one entry and answers
// what happened: not_modified, updated (with the changes), gone, error or
// skipped (the stored request could not be sent again as it was).
func (a *API) handleEntryRevalidate(w http.ResponseWriter, r *http.Request) {
	key, b, err := a.keyAndBackend(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	res, err := a.gw.Revalidate(r.Context(), b, key)
	if errors.Is(err, gateway.ErrNotFound) {
		a.writeError(w, r, errEntryNotFound(key))
		return
	}
	if errors.Is(err, gateway.ErrUnknownUpstream) {
		// The entry exists but its upstream is not configured here (it was
		// imported, say): nothing to ask.
		a.writeError(w, r, &Error{Status: http.StatusConflict, Code: "unknown_upstream", Message: err.Error()})
		return
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
