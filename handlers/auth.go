package handlers

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cachegate/cachegate/views"
	"github.com/go-chi/chi/v5"
)

// authenticate guards every /api/ route: the guard's Host, site and client
// rules (guard.go), then the token, then the body's content type. A
// disabled API answers 403 with the reason; with a token set, requests
// need "Authorization: Bearer <token>", compared in constant time. The API
// takes no session cookie: only the pages do.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := a.admit(r, false); err != nil {
			a.writeError(w, r, err)
			return
		}
		if err := a.checkBearer(w, r); err != nil {
			a.writeError(w, r, err)
			return
		}
		if isUnsafe(r.Method) {
			if err := checkBodyType(r); err != nil {
				a.writeError(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Protect guards another admin handler (the profiler) with the same rules,
// token and off-switch as /api, without the content-type rule.
func (a *API) Protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := a.admit(r, false); err != nil {
			a.writeError(w, r, err)
			return
		}
		if err := a.checkBearer(w, r); err != nil {
			a.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkBearer checks the Authorization header when a token is set.
func (a *API) checkBearer(w http.ResponseWriter, r *http.Request) *Error {
	if a.token == "" {
		return nil
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cachegate admin"`)
		return &Error{Status: http.StatusUnauthorized, Code: "unauthorized",
			Message: "the admin API needs an Authorization: Bearer <admin token> header"}
	}
	if !tokenEqual(strings.TrimSpace(token), a.token) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cachegate admin", error="invalid_token"`)
		return &Error{Status: http.StatusUnauthorized, Code: "invalid_token",
			Message: "the bearer token is not the admin token"}
	}
	return nil
}

// hasBearer reports whether r carries the admin token as a bearer token.
func (a *API) hasBearer(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && a.token != "" && strings.EqualFold(scheme, "Bearer") && tokenEqual(strings.TrimSpace(token), a.token)
}

// tokenEqual compares in constant time. Hashing first makes the time
// independent of the lengths too.
func tokenEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// Sessions for the pages. A browser cannot send a bearer header with a
// link or a form, so POST /signin trades the token for a cookie. The
// cookie is stateless, "<expiry>.<HMAC-SHA256 of it keyed by the admin
// token>": every replica that shares the token accepts it, a restart keeps
// it, and changing the token ends every session. Signing out removes it
// from the browser; a copy taken before stays valid until it expires.

const (
	sessionCookie   = "cachegate_session"
	sessionLifetime = 12 * time.Hour
)

// pageCSP keeps scripts to the admin side's own files: with no inline
// script allowed, an entry body or a header shown on a page cannot run.
const pageCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"

// mac is the base64url HMAC-SHA256 of the parts under key; each use names
// itself in the first part so that no value stands in for another.
func mac(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// newSession returns a cookie value valid until now+sessionLifetime.
func (a *API) newSession() (string, time.Time) {
	exp := a.now().Add(sessionLifetime).Truncate(time.Second)
	v := strconv.FormatInt(exp.Unix(), 10)
	return v + "." + mac([]byte(a.token), "session", v), exp
}

// session returns r's session cookie when it is valid now.
func (a *API) session(r *http.Request) (string, bool) {
	if a.token == "" {
		return "", false
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", false
	}
	v, sig, ok := strings.Cut(c.Value, ".")
	if !ok {
		return "", false
	}
	unix, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return "", false
	}
	left := time.Unix(unix, 0).Sub(a.now())
	if left <= 0 || left > sessionLifetime {
		return "", false
	}
	if !hmac.Equal([]byte(sig), []byte(mac([]byte(a.token), "session", v))) {
		return "", false
	}
	return c.Value, true
}

// csrfToken is the token pages put in every form (csrf_token) and in
// <meta name="csrf-token"> for scripts (X-CSRF-Token). It is bound to the
// session; before sign-in, to the admin token alone (it then only serves
// the sign-in form); without a token on loopback, to a secret of this
// process.
func (a *API) csrfToken(r *http.Request) string {
	if a.token == "" {
		return mac(a.localSecret[:], "csrf", "local")
	}
	if s, ok := a.session(r); ok {
		return mac([]byte(a.token), "csrf", s)
	}
	return a.anonymousCSRF()
}

func (a *API) anonymousCSRF() string { return mac([]byte(a.token), "csrf", "anonymous") }

// checkCSRF compares the request's CSRF token with csrfToken. The sign-in
// and sign-out forms may also carry the token of no session: a session
// that expired while the form was open must not lock the user out.
func (a *API) checkCSRF(r *http.Request, public bool) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf_token")
	}
	if got == "" {
		return false
	}
	if hmac.Equal([]byte(got), []byte(a.csrfToken(r))) {
		return true
	}
	return public && a.token != "" && hmac.Equal([]byte(got), []byte(a.anonymousCSRF()))
}

// signedIn tells the page header its state: tokenRequired says whether
// this request needs a token at all (false on loopback without one),
// signedIn whether it carries a valid session or bearer token.
func (a *API) signedIn(r *http.Request) (signedIn, tokenRequired bool) {
	if a.token == "" {
		return false, a.client(r).remote
	}
	_, ok := a.session(r)
	return ok || a.hasBearer(r), true
}

// setPageHeaders sets the security headers of every page answer.
func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
}

// protectPages wraps every HTML page and /ws: the guard's Host, site and
// client rules; then, when a token is required, a valid session cookie or
// bearer token (a GET without one is sent to /signin, anything else and
// /ws get 401); then, on unsafe methods, the CSRF token. /signin and
// /signout need no session. Multipart and urlencoded forms are parsed
// here to find csrf_token: handlers read them from r.PostForm,
// r.MultipartForm or r.FormFile.
func (a *API) protectPages(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w.Header())
		unsafe := isUnsafe(r.Method)
		if _, err := a.admit(r, unsafe); err != nil {
			if err.Code == "admin_disabled" && !isWebsocket(r) {
				a.renderBare(w, r, views.ErrorView{Status: err.Status, Title: "The admin side is off", Hint: err.Message})
				return
			}
			a.refusePage(w, r, err.Status, err.Message)
			return
		}
		public := r.URL.Path == "/signin" || r.URL.Path == "/signout"
		bearer := a.hasBearer(r)
		if a.token != "" && !public && !bearer {
			if _, ok := a.session(r); !ok {
				if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !isWebsocket(r) {
					http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
					return
				}
				a.refusePage(w, r, http.StatusUnauthorized, "Sign in first: open /signin and enter the admin token.")
				return
			}
		}
		if unsafe && !bearer && !a.checkCSRF(r, public) {
			a.refusePage(w, r, http.StatusForbidden, "This form has expired or did not come from this admin page: reload the page and try again.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isWebsocket(r *http.Request) bool {
	return r.URL.Path == "/ws" || strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// refusePage answers a page request the guard refused with a bare error
// page (no frame: the frame shows data the request may not see).
func (a *API) refusePage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if isWebsocket(r) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(msg + "\n"))
		return
	}
	a.renderBare(w, r, views.ErrorView{Status: status, Title: msg, Hint: refusalHint(status)})
}

// refusalHint says what to do after the guard refused a page.
func refusalHint(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "Open /signin and enter the admin token."
	case http.StatusMisdirectedRequest:
		return "Open the admin pages by the address cachegate listens on, or add this name to admin_hosts."
	}
	return "Open the admin pages from their own address, and reload them before you try again."
}

// MountSignIn adds POST /signin and POST /signout; the ui branch's pages
// render GET /signin.
func (a *API) MountSignIn(r chi.Router) {
	r.Method(http.MethodPost, "/signin", a.protectPages(http.HandlerFunc(a.handleSignIn)))
	r.Method(http.MethodPost, "/signout", a.protectPages(http.HandlerFunc(a.handleSignOut)))
}

// handleSignIn trades the form's token for a session cookie and sends the
// browser on to next. Failures count against the client's address; a
// client over the limit is refused without the token being compared.
func (a *API) handleSignIn(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.PostFormValue("next"))
	if a.token == "" {
		// Nothing to sign in to: loopback without a token is open.
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	c := a.client(r)
	addr := "unknown"
	if c.addr.IsValid() {
		addr = c.addr.String()
	}
	back := func(code string) {
		http.Redirect(w, r, "/signin?error="+code+"&next="+url.QueryEscape(next), http.StatusSeeOther)
	}
	if !a.signins.allow(addr) {
		a.log.Warn("admin sign-in refused: too many failures", "client", addr)
		back("rate_limited")
		return
	}
	if !tokenEqual(strings.TrimSpace(r.PostFormValue("token")), a.token) {
		a.signins.fail(addr)
		a.log.Warn("admin sign-in failed", "client", addr)
		back("invalid_token")
		return
	}
	v, exp := a.newSession()
	scheme, _ := origin(r, c)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: v, Path: "/", Expires: exp, MaxAge: int(sessionLifetime / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: scheme == "https",
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// handleSignOut removes the session cookie.
func (a *API) handleSignOut(w http.ResponseWriter, r *http.Request) {
	scheme, _ := origin(r, a.client(r))
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: scheme == "https",
	})
	http.Redirect(w, r, "/signin?signed_out=1", http.StatusSeeOther)
}

// localPath returns next when it is a path on this server, else "/": a
// sign-in never sends the browser to another site ("//evil", "/\evil" and
// absolute URLs are refused).
func localPath(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') {
		return "/"
	}
	for i := 0; i < len(next); i++ {
		if next[i] < 0x20 || next[i] == 0x7f {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}

// limiter counts failed sign-ins per client address, in windows of one
// minute from the first failure. It keeps at most max addresses; once
// full, new addresses share one bucket, so a flood of addresses limits
// itself instead of growing the map. It is safe for concurrent use.
type limiter struct {
	now    func() time.Time
	max    int           // addresses kept
	limit  int           // failures allowed per window
	window time.Duration // how long failures count

	mu sync.Mutex // protects m
	m  map[string]*failures
}

type failures struct {
	start time.Time
	n     int
}

// overflowKey is the bucket of addresses that find the map full.
const overflowKey = "*"

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, max: 4096, limit: 5, window: time.Minute, m: map[string]*failures{}}
}

// allow reports whether addr may try again.
func (l *limiter) allow(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[l.key(addr)]
	return f == nil || l.now().Sub(f.start) >= l.window || f.n < l.limit
}

// fail counts a failed sign-in of addr.
func (l *limiter) fail(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.key(addr)
	now := l.now()
	f := l.m[k]
	if f == nil || now.Sub(f.start) >= l.window {
		f = &failures{start: now}
		l.m[k] = f
	}
	f.n++
}

// key returns addr, or overflowKey when the map is full of other,
// unexpired addresses. l.mu must be held.
func (l *limiter) key(addr string) string {
	if _, ok := l.m[addr]; ok || len(l.m) < l.max {
		return addr
	}
	now := l.now()
	for k, f := range l.m {
		if now.Sub(f.start) >= l.window {
			delete(l.m, k)
		}
	}
	if len(l.m) < l.max {
		return addr
	}
	return overflowKey
}
