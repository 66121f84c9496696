package mongo

import (
	"net/http"
	"sort"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/cachegate/cachegate/cache"
)

// document is an entry as stored. Field names are short but readable, so
// that a person browsing the collection in mongosh understands it.
type document struct {
	Key           string        `bson:"_id"`
	BaseKey       string        `bson:"base"`
	Upstream      string        `bson:"upstream"`
	Method        string        `bson:"method"`
	URL           string        `bson:"url"`
	RequestHeader []headerField `bson:"req_header,omitempty"`
	Status        int           `bson:"status"`
	Header        []headerField `bson:"header,omitempty"`
	// Vary lists the header names the response's Vary fields name, lower
	// case, for the VaryOn filter: FerretDB 1.x cannot match a name and a
	// value within one element of Header ($elemMatch on fields).
	Vary         []string       `bson:"vary,omitempty"`
	Body         []byte         `bson:"body,omitempty"`
	BodyFile     *bson.ObjectID `bson:"body_file,omitempty"` // GridFS file holding the body, if not inline
	Size         int64          `bson:"size"`
	ContentType  string         `bson:"content_type"`
	RequestTime  *bson.DateTime `bson:"request_time,omitempty"`
	Created      bson.DateTime  `bson:"created"`
	Expires      bson.DateTime  `bson:"expires"`
	ETag         string         `bson:"etag,omitempty"`
	LastModified string         `bson:"last_modified,omitempty"`
	Hits         int64          `bson:"hits"`
	LastHit      *bson.DateTime `bson:"last_hit,omitempty"`
	Reason       string         `bson:"reason,omitempty"`
	// RequestBody is the body of the request behind a non-GET entry,
	// inline (request bodies are small next to the responses that go to
	// GridFS), so that an admin revalidation can send it again.
	RequestBody []byte `bson:"req_body,omitempty"`
}

// headerField holds one header. Headers are stored as a list rather than
// a sub-document because header names may hold '.' and '$', which MongoDB
// (and FerretDB even more so) restricts in field names.
type headerField struct {
	Name   string   `bson:"k"`
	Values []string `bson:"v"`
}

func fromHeader(h http.Header) []headerField {
	if len(h) == 0 {
		return nil
	}
	out := make([]headerField, 0, len(h))
	for k, v := range h {
		out = append(out, headerField{Name: k, Values: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func toHeader(fields []headerField) http.Header {
	if len(fields) == 0 {
		return nil
	}
	h := make(http.Header, len(fields))
	for _, f := range fields {
		h[f.Name] = append([]string(nil), f.Values...)
	}
	return h
}

// date converts t to a BSON date, truncating to the millisecond.
func date(t time.Time) bson.DateTime { return bson.NewDateTimeFromTime(t) }

// dateCeil converts t to the first BSON date not before t. Filters compare
// stored (whole-millisecond) dates with bounds that may carry nanoseconds;
// for a whole-millisecond d, d >= t exactly when d >= dateCeil(t), and
// d < t exactly when d < dateCeil(t), so the store agrees with
// cache.Filter.Match.
func dateCeil(t time.Time) bson.DateTime {
	d := bson.NewDateTimeFromTime(t)
	if t.Nanosecond()%int(time.Millisecond) != 0 {
		d++
	}
	return d
}

func optDate(t time.Time) *bson.DateTime {
	if t.IsZero() {
		return nil
	}
	d := date(t)
	return &d
}

func fromDate(d bson.DateTime) time.Time { return d.Time().UTC() }

func fromOptDate(d *bson.DateTime) time.Time {
	if d == nil {
		return time.Time{}
	}
	return fromDate(*d)
}

// expiresDate stores "never" (the zero Time) as neverDate.
func expiresDate(t time.Time) bson.DateTime {
	if t.IsZero() {
		return neverDate
	}
	return date(t)
}

// newDocument converts e; the body is left out, the caller decides where
// it goes. The request body is always inline.
func newDocument(e *cache.Entry) *document {
	return &document{
		Key:           e.Key,
		BaseKey:       e.BaseKey,
		Upstream:      e.Upstream,
		Method:        e.Method,
		URL:           e.URL,
		RequestHeader: fromHeader(e.RequestHeader),
		Status:        e.Status,
		Header:        fromHeader(e.Header),
		Vary:          lowerAll(cache.VaryNames(e.Header)),
		Size:          int64(len(e.Body)),
		ContentType:   e.ContentType,
		RequestTime:   optDate(e.RequestTime),
		Created:       date(e.Created),
		Expires:       expiresDate(e.Expires),
		ETag:          e.ETag,
		LastModified:  e.LastModified,
		Hits:          e.Hits,
		LastHit:       optDate(e.LastHit),
		Reason:        e.Reason,
		RequestBody:   e.RequestBody,
	}
}

// maxInline bounds the bytes of bodies a document holds inline, under
// MongoDB's 16 MiB document limit with room for the metadata.
const maxInline = 15 << 20

// boundRequestBody drops a request body that would not fit in the
// document beside its inline response body. Such an entry keeps no
// request body; an admin revalidation skips it rather than send the
// request without one (its key says a body was part of it).
func (d *document) boundRequestBody() {
	if len(d.RequestBody)+len(d.Body) > maxInline {
		d.RequestBody = nil
	}
}

// entry converts d back, without the body and the request body.
func (d *document) entry() *cache.Entry {
	e := &cache.Entry{
		Key:           d.Key,
		BaseKey:       d.BaseKey,
		Upstream:      d.Upstream,
		Method:        d.Method,
		URL:           d.URL,
		RequestHeader: toHeader(d.RequestHeader),
		Status:        d.Status,
		Header:        toHeader(d.Header),
		Size:          d.Size,
		ContentType:   d.ContentType,
		RequestTime:   fromOptDate(d.RequestTime),
		Created:       fromDate(d.Created),
		ETag:          d.ETag,
		LastModified:  d.LastModified,
		Hits:          d.Hits,
		LastHit:       fromOptDate(d.LastHit),
		Reason:        d.Reason,
	}
	if d.Expires < neverDate {
		e.Expires = fromDate(d.Expires)
	}
	return e
}

// lowerAll lower-cases names in place, for the vary field's exact match.
func lowerAll(names []string) []string {
	for i, n := range names {
		names[i] = strings.ToLower(n)
	}
	return names
}
