package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// entryColumns are the columns scanEntry reads, in its order, from the
// entries table aliased e.
const entryColumns = `e.key, e.base_key, e.upstream, e.method, e.url, e.request_header,
	e.status, e.header, e.size, e.content_type, e.request_time, e.created, e.expires,
	e.etag, e.last_modified, e.hits, e.last_hit, e.reason`

// upsertEntry replaces an entry's columns in place, keeping its id (and so
// its body row), and returns the id. Over a row marked deleted and not
// swept yet, it stores the entry as new.
const upsertEntry = insertEntries + entryValues + "\n\t" + onConflictEntries + "\n\tRETURNING id"

// insertEntries, entryValues (one row's placeholders, in row.args order)
// and onConflictEntries make upsertEntry; putEach repeats entryValues to
// upsert many rows in one statement.
const (
	insertEntries = `INSERT INTO entries (key, base_key, upstream, method, url, request_header,
	status, header, size, content_type, request_time, created, expires,
	etag, last_modified, hits, last_hit, last_used, reason)
	VALUES `
	entryValues       = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	onConflictEntries = `ON CONFLICT (key) DO UPDATE SET
	base_key = excluded.base_key, upstream = excluded.upstream, method = excluded.method,
	url = excluded.url, request_header = excluded.request_header, status = excluded.status,
	header = excluded.header, size = excluded.size, content_type = excluded.content_type,
	request_time = excluded.request_time, created = excluded.created, expires = excluded.expires,
	etag = excluded.etag, last_modified = excluded.last_modified, hits = excluded.hits,
	last_hit = excluded.last_hit, last_used = excluded.last_used, reason = excluded.reason,
	deleted = 0`
)

// upsertEntriesSQL upserts n entries in one statement, without RETURNING.
func upsertEntriesSQL(n int) string {
	return insertEntries + strings.TrimSuffix(strings.Repeat(entryValues+", ", n), ", ") + "\n\t" + onConflictEntries
}

// upsertBodiesSQL stores n bodies given as (key, body, request body)
// triples under the ids of their entries, which must exist and have
// distinct keys. "WHERE true" tells the parser that ON CONFLICT belongs to
// the INSERT, not the join.
func upsertBodiesSQL(n int) string {
	return `INSERT INTO bodies (id, body, request_body)
	SELECT e.id, v.column2, v.column3 FROM (VALUES ` + strings.TrimSuffix(strings.Repeat("(?, ?, ?), ", n), ", ") + `) AS v
	JOIN entries AS e ON e.key = v.column1 WHERE true
	ON CONFLICT (id) DO UPDATE SET body = excluded.body, request_body = excluded.request_body`
}

const upsertBody = `INSERT INTO bodies (id, body, request_body) VALUES (?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET body = excluded.body, request_body = excluded.request_body`

// requestBody is the request_body column's value for p: NULL when the
// request had no body.
func requestBody(p []byte) any {
	if len(p) == 0 {
		return nil
	}
	return p
}

// row is an entry in the shape of the entries table.
type row struct {
	Key, BaseKey, Upstream, Method, URL string
	RequestHeader                       string
	Status                              int
	Header                              string
	Size                                int64
	ContentType                         string
	RequestTime                         sql.NullInt64
	Created, Expires                    int64
	ETag, LastModified                  string
	Hits                                int64
	LastHit                             sql.NullInt64
	LastUsed                            int64
	Reason                              string
}

// args returns r's values in upsertEntry's column order.
func (r *row) args() []any {
	return []any{r.Key, r.BaseKey, r.Upstream, r.Method, r.URL, r.RequestHeader,
		r.Status, r.Header, r.Size, r.ContentType, r.RequestTime, r.Created, r.Expires,
		r.ETag, r.LastModified, r.Hits, r.LastHit, r.LastUsed, r.Reason}
}

// zeroNanos is what time.Time{}.UnixNano() gives; cache.SortValue uses
// UnixNano for created, so a zero Created is stored as this to keep
// cursors and rows comparable.
var zeroNanos = time.Time{}.UnixNano()

func nullTime(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

func fromNanos(n int64) time.Time {
	if n == zeroNanos {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func toRow(e *cache.Entry) (*row, error) {
	reqHeader, err := json.Marshal(e.RequestHeader)
	if err != nil {
		return nil, fmt.Errorf("encode request header: %w", err)
	}
	header, err := json.Marshal(e.Header)
	if err != nil {
		return nil, fmt.Errorf("encode header: %w", err)
	}
	r := &row{
		Key: e.Key, BaseKey: e.BaseKey, Upstream: e.Upstream, Method: e.Method, URL: e.URL,
		RequestHeader: string(reqHeader),
		Status:        e.Status,
		Header:        string(header),
		Size:          int64(len(e.Body)), // the cap and totals count real bytes
		ContentType:   e.ContentType,
		RequestTime:   nullTime(e.RequestTime),
		Created:       e.Created.UnixNano(),
		Expires:       cache.ExpiresOrdinal(e.Expires),
		ETag:          e.ETag, LastModified: e.LastModified,
		Hits:    e.Hits,
		LastHit: nullTime(e.LastHit),
		Reason:  e.Reason,
	}
	r.LastUsed = r.Created
	if r.LastHit.Valid && r.LastHit.Int64 > r.LastUsed {
		r.LastUsed = r.LastHit.Int64
	}
	return r, nil
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanEntry reads entryColumns, plus the body and the request body when
// withBody.
func scanEntry(s scanner, withBody bool) (*cache.Entry, error) {
	var (
		e                 cache.Entry
		reqHeader, header []byte
		reqTime, lastHit  sql.NullInt64
		created, expires  int64
		dest              = []any{&e.Key, &e.BaseKey, &e.Upstream, &e.Method, &e.URL, &reqHeader, &e.Status, &header, &e.Size, &e.ContentType, &reqTime, &created, &expires, &e.ETag, &e.LastModified, &e.Hits, &lastHit, &e.Reason}
		body              []byte
	)
	if withBody {
		dest = append(dest, &body, &e.RequestBody)
	}
	if err := s.Scan(dest...); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(reqHeader, &e.RequestHeader); err != nil {
		return nil, fmt.Errorf("decode request header of %q: %w", e.Key, err)
	}
	if err := json.Unmarshal(header, &e.Header); err != nil {
		return nil, fmt.Errorf("decode header of %q: %w", e.Key, err)
	}
	if reqTime.Valid {
		e.RequestTime = time.Unix(0, reqTime.Int64)
	}
	if lastHit.Valid {
		e.LastHit = time.Unix(0, lastHit.Int64)
	}
	e.Created = fromNanos(created)
	if expires != cache.ExpiresOrdinal(time.Time{}) {
		e.Expires = time.Unix(0, expires)
	}
	if withBody {
		if body == nil {
			body = []byte{}
		}
		e.Body = body
	}
	return &e, nil
}

// whereClause translates f into SQL conditions on the entries table
// aliased e, with their arguments. Each condition agrees with
// cache.Filter.Match; the conformance suite checks that.
func whereClause(f cache.Filter) (where []string, args []any) {
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	if len(f.Keys) > 0 {
		add("e.key IN (?"+strings.Repeat(", ?", len(f.Keys)-1)+")", anys(f.Keys)...)
	}
	if f.Credentials {
		// request_header is a JSON object keyed by header name.
		names := make([]string, len(cache.CredentialHeaders))
		for i, n := range cache.CredentialHeaders {
			names[i] = strings.ToLower(n)
		}
		add("EXISTS (SELECT 1 FROM json_each(e.request_header) WHERE lower(json_each.key) IN (?"+strings.Repeat(", ?", len(names)-1)+"))", anys(names)...)
	}
	if f.SetCookie {
		names := make([]string, len(cache.SetCookieHeaders))
		for i, n := range cache.SetCookieHeaders {
			names[i] = strings.ToLower(n)
		}
		add("EXISTS (SELECT 1 FROM json_each(e.header) WHERE lower(json_each.key) IN (?"+strings.Repeat(", ?", len(names)-1)+"))", anys(names)...)
	}
	if f.VaryOn != "" {
		// Each Vary value is a comma-separated list: compare whole names,
		// spaces and tabs around them removed, without case.
		add(`EXISTS (SELECT 1 FROM json_each(e.header) AS h, json_each(h.value) AS v
			WHERE lower(h.key) = 'vary'
			AND instr(',' || replace(replace(lower(v.value), ' ', ''), char(9), '') || ',', ',' || ? || ',') > 0)`,
			strings.ToLower(strings.TrimSpace(f.VaryOn)))
	}
	if f.BaseKey != "" {
		add("e.base_key = ?", f.BaseKey)
	}
	if f.Upstream != "" {
		add("e.upstream = ?", f.Upstream)
	}
	if f.URL != "" {
		if f.IsGlob() {
			add("e.url GLOB ?", globPattern(f.URL))
		} else {
			// instr is case-sensitive and has no wildcards, unlike LIKE.
			add("instr(e.url, ?) > 0", f.URL)
		}
	}
	if f.Method != "" {
		add("e.method = ?", f.Method)
	}
	if f.Status != 0 {
		add("e.status = ?", f.Status)
	}
	if f.ContentType != "" {
		if p, ok := f.ContentTypePrefix(); ok {
			add("e.content_type GLOB ?", escapeGlob(p)+"*")
		} else {
			add("e.content_type = ?", f.ContentType)
		}
	}
	switch f.Freshness {
	case cache.Fresh:
		add("e.expires > ?", f.At().UnixNano())
	case cache.Expired:
		add("e.expires <= ?", f.At().UnixNano())
	case cache.Stale:
		add("e.expires <= ?", f.At().UnixNano())
		add("(e.etag <> '' OR e.last_modified <> '')")
	}
	if f.MinSize > 0 {
		add("e.size >= ?", f.MinSize)
	}
	if f.MaxSize > 0 {
		add("e.size <= ?", f.MaxSize)
	}
	if !f.CreatedAfter.IsZero() {
		add("e.created >= ?", f.CreatedAfter.UnixNano())
	}
	if !f.CreatedBefore.IsZero() {
		add("e.created < ?", f.CreatedBefore.UnixNano())
	}
	if !f.ExpiresAfter.IsZero() {
		add("e.expires >= ?", f.ExpiresAfter.UnixNano())
	}
	if !f.ExpiresBefore.IsZero() {
		add("e.expires < ?", f.ExpiresBefore.UnixNano())
	}
	if f.Reason != "" {
		// A prefix without wildcards: LIKE and GLOB would read '%', '_',
		// '*' in a rule's pattern as their own. The range lets the
		// (upstream, reason) index find the rows; substr decides.
		add("e.reason >= ?", f.Reason)
		if hi, ok := prefixEnd(f.Reason); ok {
			add("e.reason < ?", hi)
		}
		add("substr(e.reason, 1, length(?)) = ?", f.Reason, f.Reason)
	}
	return where, args
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// globPattern turns a cache.Glob pattern into an SQLite GLOB pattern. Both
// treat '*' as any run (SQLite's '*' crosses '/' too) and '?' as one
// character, and both are case-sensitive; only '[', which opens a
// character class in SQLite, needs escaping, as the one-character class
// "[[]". A ']' outside a class is literal in SQLite already. One
// difference remains: SQLite's '?' takes one UTF-8 character where
// cache.Glob's takes one byte, so the two agree on ASCII (which
// normalized, percent-encoded URLs are) and may differ on other text.
func globPattern(p string) string {
	return strings.ReplaceAll(p, "[", "[[]")
}

// escapeGlob makes every character of s literal in an SQLite GLOB.
func escapeGlob(s string) string {
	var sb strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[':
			sb.WriteString("[" + string(r) + "]")
		default:
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// prefixEnd returns the least string above every string starting with p,
// in SQLite's binary order (bytewise): p with its last byte below 0xff
// incremented and what follows dropped. ok is false when p is all 0xff.
func prefixEnd(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}
