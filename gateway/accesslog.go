package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"
)

// The access log modes (AccessLogOptions.Mode).
const (
	AccessLogAll    = "all"    // a line for every /fetch/ request (hits sampled by SampleHits)
	AccessLogErrors = "errors" // a line only for errors: X-Cache ERROR or a 5xx status
	AccessLogOff    = "off"    // no access log
)

// AccessLogOptions say which /fetch/ requests get an access log line, and
// where it goes. The zero value logs every request to Options.Logger.
type AccessLogOptions struct {
	// Logger receives the lines, at level Info, message "request"; nil
	// means Options.Logger.
	Logger *slog.Logger
	// Mode is AccessLogAll (or ""), AccessLogErrors or AccessLogOff.
	Mode string
	// SampleHits, above 1, logs one in that many answers from a fresh
	// entry (X-Cache HIT) in mode all; misses, stale answers, bypasses
	// and errors are always logged. 0 and 1 log every hit.
	SampleHits int
}

// validate reports a mode or sample rate the gateway does not know.
func (o AccessLogOptions) validate() error {
	switch o.Mode {
	case "", AccessLogAll, AccessLogErrors, AccessLogOff:
	default:
		return fmt.Errorf("access log: unknown mode %q: want all, errors or off", o.Mode)
	}
	if o.SampleHits < 0 {
		return fmt.Errorf("access log: sample_hits %d: want 0 or more", o.SampleHits)
	}
	return nil
}

// accessLog writes the access log lines; the gateway has none when the
// log is off.
type accessLog struct {
	log        *slog.Logger
	errorsOnly bool
	sampleHits uint64 // 0: every hit
	hits       atomic.Uint64
}

func newAccessLog(o AccessLogOptions, fallback *slog.Logger) *accessLog {
	if o.Mode == AccessLogOff {
		return nil
	}
	a := &accessLog{log: o.Logger, errorsOnly: o.Mode == AccessLogErrors}
	if a.log == nil {
		a.log = fallback
	}
	if o.SampleHits > 1 {
		a.sampleHits = uint64(o.SampleHits)
	}
	return a
}

// wants reports whether an answer with this outcome and status gets a
// line. Only hits are sampled: they are the bulk of the traffic and alike,
// while a miss, a stale answer or an error is what an operator looks for.
func (a *accessLog) wants(outcome string, status int) bool {
	isError := outcome == "ERROR" || status >= 500
	switch {
	case a.errorsOnly:
		return isError
	case a.sampleHits > 0 && outcome == Hit && !isError:
		return a.hits.Add(1)%a.sampleHits == 0
	}
	return true
}

// record writes the line of one answered /fetch/ request. took is its
// latency when the caller has measured it already, else 0.
func (a *accessLog) record(start time.Time, r *http.Request, up *upstream, target *url.URL, outcome string, rw *served, took time.Duration) {
	if !a.wants(outcome, rw.status) {
		return
	}
	ctx := context.Background()
	if !a.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	if took == 0 {
		took = time.Since(start)
	}
	// The URL as the gateway stores it: credentials are never part of
	// it, and ignored parameters read REDACTED. Request headers (cookies,
	// tokens) are not logged at all.
	redacted := ""
	if t := up.memo.get(keyMemoKey(r.RequestURI)); t != nil && t.target == target {
		// A memoized request (most hits) has it already: redacting
		// again would cost more than the rest of the line.
		redacted = t.storedURL
	} else {
		redacted = RedactURL(target, &up.Policy)
	}
	var buf [10]slog.Attr
	attrs := append(buf[:0],
		slog.String("upstream", up.Name),
		slog.String("method", r.Method),
		slog.String("url", redacted),
		slog.String("cache", outcome),
		slog.Bool("coalesced", rw.coalesced),
		slog.Int("status", rw.status),
		slog.Int64("bytes", rw.n),
		slog.Duration("latency", took),
	)
	if rw.upstreamTook > 0 {
		attrs = append(attrs, slog.Duration("upstream_latency", rw.upstreamTook))
	}
	attrs = append(attrs, slog.String("request_id", rw.requestID))
	a.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}

// refuse answers a /fetch/ request refused before an upstream's rules
// apply (an unknown upstream, a bad path or token, a refused method) with
// writeError's JSON, counts it as an error of up when the upstream is
// known (nil otherwise), and logs it as an ERROR.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, start time.Time, id string, status int, code, msg string, up *upstream) {
	upstream := ""
	if up != nil {
		upstream = up.Name
		up.counters.ended(r.Method, "ERROR", false, time.Since(start))
	}
	cw := countingWriter{ResponseWriter: w}
	writeError(&cw, status, code, msg, upstream)
	if g.access == nil || !g.access.wants("ERROR", cw.status) {
		return
	}
	ctx := context.Background()
	if !g.access.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	// No URL: without a valid path and an upstream's rules there is
	// nothing to redact it by, so the path goes alone, without the query
	// that could carry a secret.
	g.access.log.LogAttrs(ctx, slog.LevelInfo, "request",
		slog.String("upstream", upstream),
		slog.String("method", r.Method),
		slog.String("path", r.URL.EscapedPath()),
		slog.String("cache", "ERROR"),
		slog.Bool("coalesced", false),
		slog.Int("status", cw.status),
		slog.Int64("bytes", cw.n),
		slog.Duration("latency", time.Since(start)),
		slog.String("request_id", id),
	)
}
