package mongo

import (
	"math"
	"regexp"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/cachegate/cachegate/cache"
)

// query translates f into a MongoDB filter that selects exactly the
// entries f.Match accepts (the conformance suite checks they agree).
func query(f cache.Filter) bson.D {
	var and bson.A
	add := func(field string, cond any) { and = append(and, bson.D{{Key: field, Value: cond}}) }
	if len(f.Keys) > 0 {
		add("_id", bson.D{{Key: "$in", Value: f.Keys}})
	}
	if f.Credentials {
		names := make([]string, len(cache.CredentialHeaders))
		for i, n := range cache.CredentialHeaders {
			names[i] = regexp.QuoteMeta(n)
		}
		// Header names compare without case, as cache.IsCredential does (a
		// name holds no newline, so $ is the end).
		add("req_header.k", bson.Regex{Pattern: `^(?:` + strings.Join(names, "|") + `)$`, Options: "i"})
	}
	if f.SetCookie {
		names := make([]string, len(cache.SetCookieHeaders))
		for i, n := range cache.SetCookieHeaders {
			names[i] = regexp.QuoteMeta(n)
		}
		add("header.k", bson.Regex{Pattern: `^(?:` + strings.Join(names, "|") + `)$`, Options: "i"})
	}
	if f.VaryOn != "" {
		add("vary", strings.ToLower(strings.TrimSpace(f.VaryOn)))
	}
	if f.BaseKey != "" {
		add("base", f.BaseKey)
	}
	if f.Upstream != "" {
		add("upstream", f.Upstream)
	}
	if f.URL != "" {
		if f.IsGlob() {
			add("url", bson.Regex{Pattern: globRegex(f.URL), Options: "s"})
		} else {
			add("url", bson.Regex{Pattern: regexp.QuoteMeta(f.URL)})
		}
	}
	if f.Method != "" {
		add("method", f.Method)
	}
	if f.Status != 0 {
		add("status", f.Status)
	}
	if f.ContentType != "" {
		if p, ok := f.ContentTypePrefix(); ok {
			add("content_type", bson.Regex{Pattern: `\A` + regexp.QuoteMeta(p)})
		} else {
			add("content_type", f.ContentType)
		}
	}
	switch f.Freshness {
	case cache.Fresh:
		// Fresh means expires > now. For whole-millisecond dates that is
		// expires > floor(now); never (neverDate) is always fresh.
		add("expires", bson.D{{Key: "$gt", Value: date(f.At())}})
	case cache.Expired:
		add("expires", bson.D{{Key: "$lte", Value: date(f.At())}})
	case cache.Stale:
		add("expires", bson.D{{Key: "$lte", Value: date(f.At())}})
		// Empty validators are left out of the document (omitempty).
		add("$or", bson.A{
			bson.D{{Key: "etag", Value: bson.D{{Key: "$gt", Value: ""}}}},
			bson.D{{Key: "last_modified", Value: bson.D{{Key: "$gt", Value: ""}}}},
		})
	}
	if f.MinSize > 0 {
		add("size", bson.D{{Key: "$gte", Value: f.MinSize}})
	}
	if f.MaxSize > 0 {
		add("size", bson.D{{Key: "$lte", Value: f.MaxSize}})
	}
	if !f.CreatedAfter.IsZero() {
		add("created", bson.D{{Key: "$gte", Value: dateCeil(f.CreatedAfter)}})
	}
	if !f.CreatedBefore.IsZero() {
		add("created", bson.D{{Key: "$lt", Value: dateCeil(f.CreatedBefore)}})
	}
	if !f.ExpiresAfter.IsZero() {
		add("expires", bson.D{{Key: "$gte", Value: dateCeil(f.ExpiresAfter)}})
	}
	if !f.ExpiresBefore.IsZero() {
		add("expires", bson.D{{Key: "$lt", Value: dateCeil(f.ExpiresBefore)}})
	}
	if f.Reason != "" {
		add("reason", bson.Regex{Pattern: `\A` + regexp.QuoteMeta(f.Reason)})
	}
	switch len(and) {
	case 0:
		return bson.D{}
	case 1:
		return and[0].(bson.D)
	}
	return bson.D{{Key: "$and", Value: and}}
}

// globRegex turns a cache.Glob pattern into an anchored regular
// expression: '*' is any run of characters, '?' one character, everything
// else literal. Used with the "s" option so '.' also matches a newline,
// as Glob's wildcards do. Glob counts bytes where the regex counts
// characters, so '?' differs on non-ASCII URLs; stored URLs are
// normalized and percent-encoded, which keeps them ASCII.
func globRegex(pattern string) string {
	var b strings.Builder
	b.WriteString(`\A`)
	lit := 0 // start of the pending literal run
	flush := func(i int) {
		b.WriteString(regexp.QuoteMeta(pattern[lit:i]))
	}
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '*':
			flush(i)
			b.WriteString(`.*`)
			lit = i + 1
		case '?':
			flush(i)
			b.WriteString(`.`)
			lit = i + 1
		}
	}
	flush(len(pattern))
	b.WriteString(`\z`)
	return b.String()
}

// cursorValue turns a cursor's sort value back into what the document
// stores for that field.
func cursorValue(c cache.Cursor) any {
	switch c.Field {
	case cache.SortURL:
		return c.S
	case cache.SortCreated:
		return bson.DateTime(floorDiv(c.N, int64(time.Millisecond)))
	case cache.SortExpires:
		if c.N == math.MaxInt64 {
			return neverDate
		}
		return bson.DateTime(floorDiv(c.N, int64(time.Millisecond)))
	}
	return c.N
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// after returns the keyset condition "strictly after cursor c":
// (field, _id) greater than (value, key) in the sort's direction.
func after(c cache.Cursor) bson.D {
	op := "$gt"
	if c.Desc {
		op = "$lt"
	}
	field := sortField(c.Field)
	v := cursorValue(c)
	return bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: field, Value: bson.D{{Key: op, Value: v}}}},
		bson.D{{Key: field, Value: v}, {Key: "_id", Value: bson.D{{Key: op, Value: c.Key}}}},
	}}}
}

// and combines two filters, either of which may be empty.
func and(a, b bson.D) bson.D {
	switch {
	case len(a) == 0:
		return b
	case len(b) == 0:
		return a
	}
	return bson.D{{Key: "$and", Value: bson.A{a, b}}}
}
