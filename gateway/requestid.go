package gateway

import "net/http"

// requestID returns the ID of r: the one it carries in X-Request-Id, when
// that is short and of safe characters. (The access log's change
// generates one when it carries none.)
func requestID(r *http.Request) string {
	v := r.Header[RequestIDHeader]
	if len(v) != 1 || len(v[0]) == 0 || len(v[0]) > 128 {
		return ""
	}
	for i := 0; i < len(v[0]); i++ {
		c := v[0][i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return ""
		}
	}
	return v[0]
}
