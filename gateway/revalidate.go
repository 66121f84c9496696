package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// ErrNotFound is returned by the admin operations for a key that is not
// stored.
var ErrNotFound = errors.New("entry not found")

// ErrUnknownUpstream is wrapped by admin operations on an upstream that is
// not configured (an entry imported from elsewhere, say).
var ErrUnknownUpstream = errUnknownUpstream

// The outcomes of a revalidation.
const (
	OutcomeNotModified = "not_modified" // the upstream confirmed the entry; its expiry was extended
	OutcomeUpdated     = "updated"      // the upstream answered anew; the entry was replaced
	OutcomeGone        = "gone"         // the upstream answers 404 or 410; the entry was removed
	OutcomeError       = "error"        // the upstream failed or refused the request; the entry was kept
	OutcomeSkipped     = "skipped"      // the stored request cannot be sent again as it was; nothing was sent, the entry was kept
)

// Revalidation reports what a revalidation did.
type Revalidation struct {
	Key     string     `json:"key"`
	Outcome string     `json:"outcome"`
	Status  int        `json:"upstream_status,omitempty"`
	Expires *time.Time `json:"expires,omitempty"` // nil: never, or not stored
	Stored  bool       `json:"stored"`
	// Reason says why the new expiry, why the entry is no longer stored,
	// or why it was skipped.
	Reason  string   `json:"reason,omitempty"`
	Changes *Changes `json:"changes,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// Changes describes how an updated response differs from the stored one.
type Changes struct {
	StatusBefore int            `json:"status_before"`
	StatusAfter  int            `json:"status_after"`
	Headers      []HeaderChange `json:"headers,omitempty"`
	BodyChanged  bool           `json:"body_changed"`
	SizeBefore   int64          `json:"size_before"`
	SizeAfter    int64          `json:"size_after"`
	// BodyDiff is a unified line diff for text and JSON bodies (JSON is
	// indented first, so the diff follows its structure).
	BodyDiff string `json:"body_diff,omitempty"`
}

// HeaderChange is one response header that was added, removed or changed.
type HeaderChange struct {
	Name   string `json:"name"`
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
}

// Revalidate asks the upstream whether the entry stored under key in b is
// still current, sending the stored request again (its body and headers,
// what was redacted filled from the upstream's RevalidateHeaders) with a
// conditional request when the entry has validators, and updates b
// accordingly.
//
// Only an answer about the entry changes it: 304 refreshes its expiry,
// 404 and 410 remove it, another answer the policy stores (or that forbids
// storing a response of the same status) replaces it. An entry whose
// request cannot be sent again as it was is skipped (OutcomeSkipped) and
// nothing is sent. A network error, a body cut off, 401, 403, 407, 429,
// 5xx, or another answer that says nothing about the entry is an
// OutcomeError that leaves it as it was. These are reported in the
// result, not as errors; errors are for a missing entry (ErrNotFound), an
// entry of an unknown upstream or of another host, or a failing backend.
func (g *Gateway) Revalidate(ctx context.Context, b cache.Backend, key string) (Revalidation, error) {
	res := Revalidation{Key: key}
	e, ok, err := b.Get(ctx, key)
	if err != nil {
		return res, err
	}
	if !ok {
		return res, ErrNotFound
	}
	up, err := g.upstream(e.Upstream)
	if err != nil {
		return res, err
	}
	rp, skip, err := up.replayOf(e)
	if err != nil {
		return res, err
	}
	if skip != "" {
		res.Outcome, res.Reason = OutcomeSkipped, skip
		return res, nil
	}
	kr, err := newKeyedRequest(up, e.Method, rp.target, rp.header, rp.body)
	if err != nil {
		return res, err
	}
	if kr.base != e.BaseKey {
		res.Outcome, res.Reason = OutcomeSkipped, rp.mismatch(e, up.Name)
		return res, nil
	}
	var body io.Reader = http.NoBody
	if len(rp.body) > 0 {
		body = bytes.NewReader(rp.body)
	}
	req, err := http.NewRequestWithContext(ctx, e.Method, rp.target.String(), body)
	if err != nil {
		return res, err
	}
	req.Header = rp.header.Clone()
	if e.ETag != "" {
		req.Header.Set("If-None-Match", e.ETag)
	}
	if e.LastModified != "" {
		req.Header.Set("If-Modified-Since", e.LastModified)
	}
	reqTime := g.now()
	resp, err := up.client.Do(req)
	if err != nil {
		uerr := upstreamError(up.Name, unwrapURLError(err))
		up.counters.countUpstreamError(uerr)
		res.Outcome, res.Error = OutcomeError, uerr.Error()+"; the entry was kept"
		return res, nil
	}
	defer resp.Body.Close()
	respTime := g.now()
	res.Status = resp.StatusCode
	if resp.StatusCode >= 500 {
		up.counters.UpstreamErrors[err5xx].Add(1)
	}
	removeHopByHop(resp.Header)
	rewriteLocation(resp.Header, up.URL, up.Name, rp.target)

	switch {
	case resp.StatusCode == http.StatusNotModified:
		return g.confirmed(ctx, b, up, kr, e, resp.Header, reqTime, respTime, res)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		if _, err := b.Delete(ctx, key); err != nil {
			return res, err
		}
		res.Outcome = OutcomeGone
		return res, nil
	case replayFailed(resp.StatusCode, e.Status):
		res.Outcome = OutcomeError
		res.Error = fmt.Sprintf("upstream %q answered %d to the replayed request; the entry was kept", up.Name, resp.StatusCode)
		return res, nil
	}
	respBody, tooBig, err := readUpTo(resp.Body, up.Policy.MaxBodySize)
	if err != nil {
		up.counters.UpstreamErrors[errCutBody].Add(1)
		res.Outcome, res.Error = OutcomeError, upstreamError(up.Name, fmt.Errorf("reading the response body: %w", err)).Error()+"; the entry was kept"
		return res, nil
	}
	dec := up.Policy.Decide(kr.rules, cache.Response{Status: resp.StatusCode, Header: resp.Header, RequestTime: reqTime, ResponseTime: respTime, Size: int64(len(respBody))})
	dec = up.filter(kr, dec, resp.StatusCode, resp.Header, int64(len(respBody)))
	if tooBig {
		dec = cache.Decision{Rule: "max_body_size", Reason: "the new body is larger than max_body_size"}
	}
	if !dec.Store && resp.StatusCode != e.Status {
		// A redirect to a login page, say: an answer to the replay that
		// the cache would not keep tells nothing about the entry.
		res.Outcome = OutcomeError
		res.Error = fmt.Sprintf("upstream %q answered %d, which would not be stored (%s); the entry was kept", up.Name, resp.StatusCode, dec.Reason)
		return res, nil
	}
	fresh := kr.newEntry(up, resp.StatusCode, resp.Header, respBody, reqTime, respTime, dec)
	fresh.Key, fresh.BaseKey, fresh.Hits, fresh.LastHit = e.Key, e.BaseKey, e.Hits, e.LastHit
	// The replay's headers stand for the original request's: keep what
	// was stored of it, not the filled-in secrets.
	fresh.RequestHeader, fresh.RequestBody = e.RequestHeader, e.RequestBody
	res.Outcome, res.Reason = OutcomeUpdated, dec.Reason
	res.Changes = diffEntries(e, fresh, tooBig)
	if dec.Store {
		if err := b.Put(ctx, fresh); err != nil {
			return res, err
		}
		res.Stored = true
		res.Expires = expiresPtr(fresh, true)
	} else if _, err := b.Delete(ctx, key); err != nil {
		return res, err
	}
	return res, nil
}

// confirmed applies a 304 to the entry in b: the new headers merged in,
// the expiry computed anew, the body kept. When the new headers forbid
// storing, the entry is removed.
func (g *Gateway) confirmed(ctx context.Context, b cache.Backend, up *upstream, kr *keyedRequest, stale *cache.Entry, h http.Header, reqTime, respTime time.Time, res Revalidation) (Revalidation, error) {
	e := stale.Clone()
	mergeNotModified(e, h)
	e.RequestTime, e.Created = reqTime, respTime
	dec := up.Policy.Decide(kr.rules, cache.Response{Status: e.Status, Header: e.Header, RequestTime: reqTime, ResponseTime: respTime, Size: e.Size})
	dec = up.filter(kr, dec, e.Status, e.Header, e.Size)
	e.Expires, e.Reason = dec.Expires, dec.Reason
	res.Outcome, res.Reason = OutcomeNotModified, dec.Reason
	if !dec.Store {
		if _, err := b.Delete(ctx, stale.Key); err != nil {
			return res, err
		}
		return res, nil
	}
	if err := b.Put(ctx, e); err != nil {
		return res, err
	}
	res.Stored = true
	res.Expires = expiresPtr(e, true)
	return res, nil
}

func expiresPtr(e *cache.Entry, stored bool) *time.Time {
	if !stored || e.Never() {
		return nil
	}
	t := e.Expires
	return &t
}

func hostWithoutDefaultPort(u *url.URL) string {
	h, port, ok := strings.Cut(u.Host, ":")
	if ok && ((u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443")) {
		return h
	}
	return u.Host
}

// ignoredInDiff are headers that change on every response and would only
// hide the changes that matter.
var ignoredInDiff = map[string]bool{"Date": true, "Age": true, "Expires": true, "X-Request-Id": true}

func diffEntries(before, after *cache.Entry, afterTruncated bool) *Changes {
	c := &Changes{StatusBefore: before.Status, StatusAfter: after.Status, SizeBefore: before.Size, SizeAfter: after.Size}
	names := map[string]bool{}
	for k := range before.Header {
		names[k] = true
	}
	for k := range after.Header {
		names[k] = true
	}
	sorted := make([]string, 0, len(names))
	for k := range names {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if ignoredInDiff[k] {
			continue
		}
		b, a := strings.Join(before.Header.Values(k), ", "), strings.Join(after.Header.Values(k), ", ")
		if a != b {
			c.Headers = append(c.Headers, HeaderChange{Name: k, Before: b, After: a})
		}
	}
	c.BodyChanged = afterTruncated || string(before.Body) != string(after.Body)
	if c.BodyChanged && !afterTruncated && isTextual(before.ContentType) && isTextual(after.ContentType) {
		c.BodyDiff = lineDiff(textForDiff(before), textForDiff(after))
	}
	return c
}

// textForDiff returns a body as text lines for diffing; JSON is indented so
// that the diff follows its structure.
func textForDiff(e *cache.Entry) string {
	if strings.Contains(e.ContentType, "json") {
		if s, ok := indentJSON(e.Body); ok {
			return s
		}
	}
	return string(e.Body)
}

func isTextual(ct string) bool {
	return strings.HasPrefix(ct, "text/") || strings.Contains(ct, "json") || strings.Contains(ct, "xml") ||
		strings.Contains(ct, "javascript") || strings.Contains(ct, "yaml") || ct == "application/x-www-form-urlencoded"
}
