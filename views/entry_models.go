package views

import (
	"bufio"
	"context"
	"html/template"
	"io"
	"net/url"
	"time"

	"github.com/a-h/templ"
)

// EntryView is the entry detail page: one cached response with its
// request, body, key, the rule behind its expiry, and what the last action
// on it did. Every header value in it is redacted already.
type EntryView struct {
	Key     string
	BaseKey string
	// Now is the time the page was drawn at: the countdown and "ago"s
	// count from it.
	Now time.Time
	// Gone says the entry is no longer stored (a revalidation removed it):
	// the page shows only the outcome and the way back.
	Gone bool

	Upstream, Method, URL string
	// RequestHeaders are the stored request headers: those that took part
	// in the key (match_headers, Vary) and the credentials the request
	// carried, recorded as REDACTED.
	RequestHeaders []HeaderLine
	// RequestBody is the stored body of a non-GET request (redacted), ""
	// when there was none.
	RequestBody string

	Status          int
	ContentType     string
	Size            int64
	ResponseHeaders []HeaderLine
	RequestTime     time.Time
	Created         time.Time
	Expires         time.Time // zero: never
	Fresh           bool
	Hits            int64
	LastHit         time.Time // zero: never hit
	ETag            string
	LastModified    string
	// Reason is why the entry got its expiry, as recorded when it was
	// stored.
	Reason string

	Body BodyView
	// Explain is what the gateway would do with this entry's request now;
	// ExplainError says why there is none (the upstream is not configured
	// here, say).
	Explain      *ExplainModel
	ExplainError string

	// Curl is the request as a curl command through the gateway.
	Curl string

	// Revalidation is the outcome of the revalidation this page answers,
	// nil when it shows the entry only.
	Revalidation *RevalidationView
}

// HeaderLine is one header value. Role says why a request header is
// stored: "match" (match_headers), "vary" (named by the response's Vary),
// "credential" (recorded, never sent) or "" (other).
type HeaderLine struct {
	Name, Value string
	Role        string
}

// The kinds of body viewer.
const (
	BodyEmpty = "empty" // no bytes
	BodyJSON  = "json"  // pretty-printed, coloured tokens
	BodyText  = "text"  // text as text (also HTML, SVG and XML: never rendered)
	BodyImage = "image" // an <img> from ImageURL
	BodyHex   = "hex"   // a hex dump of the first KiB
)

// BodyView is how the page shows a stored body.
type BodyView struct {
	Kind string
	// JSON holds the pretty-printed JSON as tokens to colour.
	JSON []JSONToken
	// Text is the text, or the hex dump, to show.
	Text string
	// ImageURL serves the stored image (a page route, sandboxed).
	ImageURL string
	// DownloadURL serves the whole body as an attachment.
	DownloadURL string
	// Note says what the viewer leaves out or why it shows the body the
	// way it does ("the first 256 KiB of 1.2 MiB", "HTML shown as source").
	Note string
	// Shown and Size are the bytes the viewer shows and the whole body.
	Shown, Size int64
}

// JSONToken is a piece of pretty-printed JSON; Class is "k" (key), "s"
// (string), "n" (number), "b" (true/false), "z" (null) or "" (white space
// and punctuation, not coloured).
type JSONToken struct {
	Class, Text string
}

// RevalidationView is what POST /entries/{key}/revalidate did.
type RevalidationView struct {
	// Outcome is not_modified, updated, gone, error or skipped.
	Outcome string
	// Status is the upstream's answer (0 when none was asked).
	Status int
	// Reason says why the new expiry, why the entry is no longer stored,
	// or why it was skipped; Error what failed.
	Reason, Error string
	Stored        bool
	Expires       time.Time // zero: never, or not stored
	Changes       *ChangesView
}

// ChangesView is the side-by-side diff of an updated entry, cached vs
// fresh.
type ChangesView struct {
	StatusBefore, StatusAfter int
	Headers                   []HeaderChangeView
	BodyChanged               bool
	SizeBefore, SizeAfter     int64
	// Body is the body's line diff in rows, nil when there is none to
	// show; BodyNote says why ("not text", "too large to diff").
	Body     []DiffRow
	BodyNote string
}

// HeaderChangeView is a response header that was added, removed or
// changed ("" for absent).
type HeaderChangeView struct {
	Name, Before, After string
}

// DiffRow is one row of a side-by-side diff. A kind is "same", "del"
// (left only), "add" (right only), "none" (nothing on this side) or "gap"
// (unchanged lines left out).
type DiffRow struct {
	Left, Right         string
	LeftKind, RightKind string
}

// entryLink is the path of an entry's page or of one of its actions, with
// the backend.
func entryLink(l Layout, key, suffix string) string {
	return l.LinkWith("/entries/"+url.PathEscape(key)+suffix, nil)
}

// jsonBody writes the coloured JSON: each token escaped, a span only for
// the classes that are coloured. It is written by hand because a body may
// hold tens of thousands of tokens, which templ's per-attribute class
// handling makes slow.
func jsonBody(tokens []JSONToken) templ.Component {
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		bw := bufio.NewWriterSize(w, 32<<10)
		for _, t := range tokens {
			switch t.Class {
			case "k", "s", "n", "b", "z":
				bw.WriteString(`<span class="j-`)
				bw.WriteString(t.Class)
				bw.WriteString(`">`)
				template.HTMLEscape(bw, []byte(t.Text))
				bw.WriteString(`</span>`)
			default:
				template.HTMLEscape(bw, []byte(t.Text))
			}
		}
		return bw.Flush()
	})
}
