package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"

	"github.com/cachegate/cachegate/cache"
)

// adminToken is the admin token as the gateway compares it: by its
// SHA-256, so that the comparison takes the same time whatever the length
// of what a client sends.
type adminToken struct {
	set  bool
	hash [sha256.Size]byte
}

func newAdminToken(tok string) adminToken {
	if tok == "" {
		return adminToken{}
	}
	return adminToken{set: true, hash: sha256.Sum256([]byte(tok))}
}

// matches reports, in constant time, whether s is the token.
func (t adminToken) matches(s string) bool {
	h := sha256.Sum256([]byte(s))
	return t.set && subtle.ConstantTimeCompare(h[:], t.hash[:]) == 1
}

// tokenSent reports whether h carries cache.TokenHeader, and whether what
// it carries is the admin token.
func (u *upstream) tokenSent(h http.Header) (sent, valid bool) {
	v, ok := h[cache.TokenHeader]
	if !ok {
		return false, false
	}
	return true, len(v) == 1 && u.token.matches(v[0])
}

// overrides reports whether a request with header h may use the
// per-request control headers (cache.ExpireAfterHeader,
// cache.ForceRefreshHeader): they rewrite policy that every client of the
// upstream shares, so only an upstream with client_overrides, or a request
// with the admin token, may.
func (u *upstream) overrides(h http.Header) bool {
	if u.Policy.ClientOverrides {
		return true
	}
	_, valid := u.tokenSent(h)
	return valid
}

// badToken is the error message for a request whose TokenHeader is not
// the admin token. It never repeats what was sent.
func (u *upstream) badToken() string {
	if !u.token.set {
		return cache.TokenHeader + " was sent, but no admin token is configured (-admin-token): leave the header out"
	}
	return cache.TokenHeader + " is not the admin token: leave the header out, or send the token set by -admin-token"
}
