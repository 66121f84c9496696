package transfer

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cachegate/cachegate/cache"
)

// The HAR 1.2 objects we write (http://www.softwareishard.com/blog/har-12-spec/).
// Only what cachegate knows is filled in; unknown sizes and timings are -1
// as the spec asks.
type (
	harCreator struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	harNameValue struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	harRequest struct {
		Method      string         `json:"method"`
		URL         string         `json:"url"`
		HTTPVersion string         `json:"httpVersion"`
		Cookies     []harNameValue `json:"cookies"`
		Headers     []harNameValue `json:"headers"`
		QueryString []harNameValue `json:"queryString"`
		PostData    *harPostData   `json:"postData,omitempty"`
		HeadersSize int            `json:"headersSize"`
		BodySize    int            `json:"bodySize"`
	}
	// harPostData is the stored request body. HAR 1.2 has no encoding
	// for it; a body that is not text goes in base64 with "encoding" as
	// in content, which readers that do not know it show as text.
	harPostData struct {
		MimeType string         `json:"mimeType"`
		Params   []harNameValue `json:"params"`
		Text     string         `json:"text"`
		Encoding string         `json:"encoding,omitempty"`
	}
	harContent struct {
		Size     int64  `json:"size"`
		MimeType string `json:"mimeType"`
		Text     string `json:"text"`
		Encoding string `json:"encoding,omitempty"`
	}
	harResponse struct {
		Status      int            `json:"status"`
		StatusText  string         `json:"statusText"`
		HTTPVersion string         `json:"httpVersion"`
		Cookies     []harNameValue `json:"cookies"`
		Headers     []harNameValue `json:"headers"`
		Content     harContent     `json:"content"`
		RedirectURL string         `json:"redirectURL"`
		HeadersSize int            `json:"headersSize"`
		BodySize    int64          `json:"bodySize"`
	}
	harCacheState struct {
		Expires    string `json:"expires,omitempty"`
		LastAccess string `json:"lastAccess"`
		ETag       string `json:"eTag"`
		HitCount   int64  `json:"hitCount"`
	}
	harCache struct {
		AfterRequest *harCacheState `json:"afterRequest,omitempty"`
	}
	harTimings struct {
		Blocked float64 `json:"blocked"`
		DNS     float64 `json:"dns"`
		Connect float64 `json:"connect"`
		Send    float64 `json:"send"`
		Wait    float64 `json:"wait"`
		Receive float64 `json:"receive"`
		SSL     float64 `json:"ssl"`
	}
	// harExtra holds cachegate's fields that HAR has no place for; the
	// spec allows custom fields whose names start with an underscore.
	harExtra struct {
		Key      string  `json:"key"`
		BaseKey  string  `json:"base_key"`
		Upstream string  `json:"upstream"`
		Expires  *string `json:"expires"` // null: never
		Reason   string  `json:"reason,omitempty"`
	}
	harEntry struct {
		StartedDateTime string      `json:"startedDateTime"`
		Time            float64     `json:"time"`
		Request         harRequest  `json:"request"`
		Response        harResponse `json:"response"`
		Cache           harCache    `json:"cache"`
		Timings         harTimings  `json:"timings"`
		Comment         string      `json:"comment,omitempty"`
		Cachegate       harExtra    `json:"_cachegate"`
	}
)

// harTime is ISO 8601 with milliseconds, which every HAR reader parses.
const harTime = "2006-01-02T15:04:05.000Z07:00"

// harWriter streams a HAR document: the opening of log, then each entry
// as it comes, then the closing brackets. Only one entry is ever encoded
// in memory.
type harWriter struct {
	w     *bufio.Writer
	buf   bytes.Buffer
	first bool
}

func newHARWriter(w *bufio.Writer) *harWriter { return &harWriter{w: w, first: true} }

func (h *harWriter) begin(time.Time, cache.Filter) error {
	if err := encodeJSON(&h.buf, harCreator{Name: "cachegate", Version: buildVersion()}); err != nil {
		return err
	}
	_, err := h.w.WriteString(`{"log":{"version":"1.2","creator":` + strings.TrimSuffix(h.buf.String(), "\n") + `,"pages":[],"entries":[` + "\n")
	return err
}

func (h *harWriter) entry(e *cache.Entry) error {
	if err := encodeJSON(&h.buf, toHAREntry(e)); err != nil {
		return err
	}
	if !h.first {
		if _, err := h.w.WriteString(",\n"); err != nil {
			return err
		}
	}
	h.first = false
	_, err := h.w.Write(bytes.TrimSuffix(h.buf.Bytes(), []byte("\n")))
	return err
}

func (h *harWriter) end() error {
	_, err := h.w.WriteString("\n]}}\n")
	return err
}

// buildVersion is the module version the binary was built from, or
// "devel".
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func toHAREntry(e *cache.Entry) harEntry {
	started := e.RequestTime
	if started.IsZero() {
		started = e.Created
	}
	var elapsed float64
	if !e.RequestTime.IsZero() && e.Created.After(e.RequestTime) {
		elapsed = float64(e.Created.Sub(e.RequestTime)) / float64(time.Millisecond)
	}
	mime := e.Header.Get("Content-Type")
	if mime == "" {
		mime = e.ContentType
	}
	content := harContent{Size: int64(len(e.Body)), MimeType: mime}
	if isText(cache.MediaType(mime)) && utf8.Valid(e.Body) {
		content.Text = string(e.Body)
	} else {
		content.Text = base64.StdEncoding.EncodeToString(e.Body)
		content.Encoding = "base64"
	}
	lastAccess := e.LastHit
	if lastAccess.IsZero() {
		lastAccess = e.Created
	}
	state := &harCacheState{LastAccess: lastAccess.UTC().Format(harTime), ETag: e.ETag, HitCount: e.Hits}
	extra := harExtra{Key: e.Key, BaseKey: e.BaseKey, Upstream: e.Upstream, Reason: e.Reason}
	if !e.Expires.IsZero() {
		s := e.Expires.UTC().Format(harTime)
		state.Expires, extra.Expires = s, &s
	}
	req := harRequest{
		Method: e.Method, URL: e.URL, HTTPVersion: "HTTP/1.1",
		Cookies: []harNameValue{}, Headers: harHeaders(e.RequestHeader),
		QueryString: harQuery(e.URL), HeadersSize: -1, BodySize: -1,
	}
	if len(e.RequestBody) > 0 {
		pd := &harPostData{MimeType: e.RequestHeader.Get("Content-Type"), Params: []harNameValue{}}
		if isText(cache.MediaType(pd.MimeType)) && utf8.Valid(e.RequestBody) {
			pd.Text = string(e.RequestBody)
		} else {
			pd.Text = base64.StdEncoding.EncodeToString(e.RequestBody)
			pd.Encoding = "base64"
		}
		req.PostData, req.BodySize = pd, len(e.RequestBody)
	}
	return harEntry{
		StartedDateTime: started.UTC().Format(harTime),
		Time:            elapsed,
		Request:         req,
		Response: harResponse{
			Status: e.Status, StatusText: http.StatusText(e.Status), HTTPVersion: "HTTP/1.1",
			Cookies: []harNameValue{}, Headers: harHeaders(e.Header), Content: content,
			RedirectURL: e.Header.Get("Location"), HeadersSize: -1, BodySize: int64(len(e.Body)),
		},
		Cache:     harCache{AfterRequest: state},
		Timings:   harTimings{Blocked: -1, DNS: -1, Connect: -1, Send: 0, Wait: elapsed, Receive: 0, SSL: -1},
		Comment:   e.Reason,
		Cachegate: extra,
	}
}

// harHeaders flattens h into HAR's name/value list, sorted by name so the
// output is stable.
func harHeaders(h http.Header) []harNameValue {
	out := []harNameValue{}
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range h[name] {
			out = append(out, harNameValue{Name: name, Value: v})
		}
	}
	return out
}

// harQuery lists the query parameters of rawURL in their order.
func harQuery(rawURL string) []harNameValue {
	out := []harNameValue{}
	u, err := url.Parse(rawURL)
	if err != nil || u.RawQuery == "" {
		return out
	}
	for _, part := range strings.Split(u.RawQuery, "&") {
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if v, err := url.QueryUnescape(value); err == nil {
			value = v
		}
		out = append(out, harNameValue{Name: name, Value: value})
	}
	return out
}

// isText reports whether a media type's bodies are text, so HAR can carry
// them as they are instead of in base64.
func isText(mt string) bool {
	switch {
	case strings.HasPrefix(mt, "text/"),
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"),
		mt == "application/json", mt == "application/xml", mt == "application/javascript",
		mt == "application/ecmascript", mt == "application/x-www-form-urlencoded",
		mt == "application/graphql", mt == "image/svg+xml":
		return true
	}
	return false
}
