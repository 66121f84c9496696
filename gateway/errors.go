package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
)

// apiError is the JSON body of every error the gateway answers with itself.
type apiError struct {
	Error    string `json:"error"`
	Code     string `json:"code"`
	Upstream string `json:"upstream,omitempty"`
}

// writeError answers with {"error": msg, "code": code}. The headers say the
// answer comes from cachegate, not the upstream.
func writeError(w http.ResponseWriter, status int, code, msg, upstream string) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(apiError{Error: msg, Code: code, Upstream: upstream})
}

// writeUpstreamError answers 504 for a timeout and 502 for anything else
// (code upstream_transfer_encoding for a transfer coding cachegate cannot read).
func writeUpstreamError(w http.ResponseWriter, err error, name string) {
	var ue *UpstreamError
	var ee *encodingError
	if errors.As(err, &ee) {
		writeError(w, http.StatusBadGateway, "bad_upstream_encoding", err.Error(), name)
		return
	}
	if errors.As(err, &ue) && ue.Timeout {
		writeError(w, http.StatusGatewayTimeout, "upstream_timeout", ue.Error(), name)
		return
	}
	if ue != nil && ue.TransferEncoding != "" {
		writeError(w, http.StatusBadGateway, "upstream_transfer_encoding", ue.Error(), name)
		return
	}
	writeError(w, http.StatusBadGateway, "upstream_unreachable", err.Error(), name)
}
