package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/cachegate/cachegate/cache"
)

// An admin revalidation sends the request behind an entry again. What was
// stored of that request is redacted (ignored parameters read REDACTED,
// credentials are never kept), so before sending anything the gateway
// decides whether the stored request is the one that made the entry. If
// it is not, the entry is skipped: an answer to some other request (an
// empty POST, a request without its API key or without the credential it
// was cached for) would overwrite or delete it.

// recordRequest keeps on e what an admin revalidation needs to send kr
// again: the request body (redacted like the URL), its Content-Type, and,
// as REDACTED, the name of each credential header the request carried,
// so that a replay can tell that it lacks one.
func (kr *keyedRequest) recordRequest(up *upstream, e *cache.Entry) {
	for _, name := range cache.CredentialHeaders {
		if len(kr.header[name]) > 0 && len(e.RequestHeader[name]) == 0 {
			e.RequestHeader[name] = []string{Redacted}
		}
	}
	if len(kr.body) == 0 {
		return
	}
	ct := kr.header.Get("Content-Type")
	if ct != "" && len(e.RequestHeader["Content-Type"]) == 0 {
		e.RequestHeader["Content-Type"] = []string{ct}
	}
	e.RequestBody = redactBody(kr.body, ct, &up.Policy)
}

// redactBody returns body with the values of ignored parameters in a JSON
// object or form body replaced by REDACTED, as the URL's are. A body
// without ignored parameters is returned as it is, byte for byte, so that
// it can be sent again exactly.
func redactBody(body []byte, contentType string, p *cache.Policy) []byte {
	if len(p.IgnoredParameters) == 0 || len(body) == 0 {
		return body
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case mt == "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return body
		}
		found := false
		for _, name := range p.IgnoredParameters {
			if _, ok := vals[name]; ok {
				vals.Set(name, Redacted)
				found = true
			}
		}
		if !found {
			return body
		}
		return []byte(vals.Encode())
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		var obj map[string]json.RawMessage
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&obj); err != nil {
			return body
		}
		found := false
		for _, name := range p.IgnoredParameters {
			if _, ok := obj[name]; ok {
				obj[name] = json.RawMessage(`"` + Redacted + `"`)
				found = true
			}
		}
		if !found {
			return body
		}
		out, err := json.Marshal(obj)
		if err != nil {
			return body
		}
		return out
	}
	return body
}

// replay is the request an admin revalidation sends for an entry.
type replay struct {
	target *url.URL
	header http.Header
	body   []byte
	// credential names the credential header revalidate_headers supplied,
	// if any: the replay then answers for that credential.
	credential string
}

// replayOf rebuilds the request behind e, filling what was redacted from
// the upstream's RevalidateHeaders. It returns a reason instead when the
// request cannot be sent again as it was; an error only for an entry
// whose URL is not the upstream's.
func (u *upstream) replayOf(e *cache.Entry) (*replay, string, error) {
	t, err := url.Parse(e.URL)
	if err != nil {
		return nil, "", fmt.Errorf("the stored URL %q does not parse: %w", e.URL, err)
	}
	if !strings.EqualFold(t.Host, u.URL.Host) && !strings.EqualFold(t.Host, hostWithoutDefaultPort(u.URL)) {
		return nil, "", fmt.Errorf("the stored URL's host %q is not upstream %q's host %q", t.Host, u.Name, u.URL.Host)
	}
	t.Scheme, t.Host = u.URL.Scheme, u.URL.Host
	for _, part := range strings.FieldsFunc(t.RawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		if name, value, _ := strings.Cut(part, "="); value == Redacted {
			return nil, fmt.Sprintf("query parameter %q was stored REDACTED (an ignored parameter's value is never kept), so the request cannot be sent again as it was", name), nil
		}
	}

	p := &u.Policy
	rp := &replay{target: t, header: http.Header{}}
	names := make([]string, 0, len(e.RequestHeader))
	for name := range e.RequestHeader {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		vals := e.RequestHeader[name]
		canonical := http.CanonicalHeaderKey(name) // as the key reads it
		if !containsRedacted(vals) {
			rp.header[canonical] = append([]string(nil), vals...)
			continue
		}
		fill := u.RevalidateHeaders.Values(name)
		if len(fill) == 0 {
			if isCredential(name) {
				return nil, fmt.Sprintf("the request carried %s, which is never stored; set revalidate_headers for upstream %q to revalidate such entries", name, u.Name), nil
			}
			return nil, fmt.Sprintf("request header %s was stored REDACTED and revalidate_headers of upstream %q does not supply it", name, u.Name), nil
		}
		rp.header[canonical] = append([]string(nil), fill...)
		if isCredential(name) {
			rp.credential = name
		}
	}
	// The other configured headers go along, except a credential the
	// original request did not carry (the entry is shared with clients
	// who have none) and a header of the key the original lacked.
	stored := make(map[string]bool, len(names))
	for _, name := range names {
		stored[http.CanonicalHeaderKey(name)] = true
	}
	for name, vals := range u.RevalidateHeaders {
		if stored[name] || isCredential(name) || keyedHeader(name, p) {
			continue
		}
		rp.header[name] = append([]string(nil), vals...)
	}

	if bytes.Contains(e.RequestBody, []byte(Redacted)) {
		return nil, "the request body holds REDACTED values (ignored parameters are never kept), so it cannot be sent again as it was", nil
	}
	rp.body = e.RequestBody
	return rp, "", nil
}

func containsRedacted(vals []string) bool {
	for _, v := range vals {
		if v == Redacted {
			return true
		}
	}
	return false
}

// keyedHeader reports whether a request header takes part in the key of
// the upstream's entries (see keyHeaders): sending one the original
// request lacked would ask for another entry.
func keyedHeader(name string, p *cache.Policy) bool {
	switch {
	case p.Key.IgnoreHeaders || ignoredHeader(name, p):
		return false
	case p.MatchAllHeaders:
		return !isHopByHop(name) && !strings.HasPrefix(name, "X-Cachegate-") && !isConditional(name)
	}
	for _, m := range p.MatchHeaders {
		if strings.EqualFold(m, name) {
			return true
		}
	}
	return false
}

// mismatch says why a replay whose key is not the entry's would not
// answer for the entry.
func (rp *replay) mismatch(e *cache.Entry, upstreamName string) string {
	switch {
	case rp.credential != "":
		return fmt.Sprintf("the %s in revalidate_headers of upstream %q is not the credential this entry was cached for", rp.credential, upstreamName)
	case e.Method != http.MethodGet && e.Method != http.MethodHead && len(e.RequestBody) == 0:
		return "the request body was not kept (the entry was stored before cachegate kept request bodies, or the body was too large for its backend), so the request cannot be sent again as it was"
	}
	return "the stored request no longer gives this entry's key (it was imported, or the upstream's key settings changed), so its answer would belong to another entry"
}

// replayFailed reports whether an upstream's answer to a replay says
// nothing about the entry: the replay was refused (401, 403, 407), limited
// (429) or failed (5xx), or met another client error the stored response
// did not have. Such an answer leaves the entry as it is.
func replayFailed(status, stored int) bool {
	switch {
	case status == http.StatusUnauthorized, status == http.StatusForbidden,
		status == http.StatusProxyAuthRequired, status == http.StatusTooManyRequests, status >= 500:
		return true
	case status >= 400 && status != http.StatusNotFound && status != http.StatusGone:
		return status != stored
	}
	return false
}
