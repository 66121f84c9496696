package cache

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Expiry is how long a response stays fresh, with requests-cache's three
// special values. Positive values are durations. Values below DoNotCache
// are absolute times, as requests-cache accepts a datetime (ExpireAt makes
// one, At reads it back); they are negative, so every check that refuses
// the special values (e < 0) refuses them too.
type Expiry time.Duration

// The special expiries, named as in requests-cache.
const (
	// ExpireImmediately stores the response but treats it as stale at once,
	// so it is revalidated (or refetched) on the next request.
	ExpireImmediately Expiry = 0
	// NeverExpire keeps the response fresh forever.
	NeverExpire Expiry = -1
	// DoNotCache does not store the response at all.
	DoNotCache Expiry = -2
)

// absoluteBase is the Expiry of the Unix epoch; later times count down
// from it in nanoseconds.
const absoluteBase = DoNotCache - 1

// ExpireAt is the expiry "at t": a response stored before t stays fresh
// until t, one stored after it is stored stale. Times before the Unix epoch
// are the epoch.
func ExpireAt(t time.Time) Expiry {
	return absoluteBase - Expiry(min(max(t.UnixNano(), 0), math.MaxInt64+int64(absoluteBase)))
}

// At returns the time of an absolute expiry (ExpireAt), ok false for any
// other.
func (e Expiry) At() (t time.Time, ok bool) {
	if e > absoluteBase {
		return time.Time{}, false
	}
	return time.Unix(0, int64(absoluteBase-e)).UTC(), true
}

// ParseExpiry accepts a Go duration ("90s", "1h30m"), a duration with a day
// or week unit ("1d", "2w"), plain seconds ("3600"), an RFC 3339 date-time
// ("2027-01-31T00:00:00Z", an absolute expiry), or one of the words
// "never", "do_not_cache" and "expire_immediately".
func ParseExpiry(s string) (Expiry, error) {
	s = strings.TrimSpace(s)
	if strings.ContainsRune(s, 'T') && strings.ContainsRune(s, ':') {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return 0, fmt.Errorf("bad expiry %q: a date-time must be RFC 3339, like 2027-01-31T00:00:00Z", s)
		}
		return ExpireAt(t), nil
	}
	switch strings.ToLower(s) {
	case "never", "never_expire":
		return NeverExpire, nil
	case "do_not_cache":
		return DoNotCache, nil
	case "expire_immediately", "0":
		return ExpireImmediately, nil
	case "":
		return 0, fmt.Errorf("empty expiry: want a duration like 90s or 1h, seconds, never, do_not_cache or expire_immediately")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			if n == -1 {
				return NeverExpire, nil
			}
			return 0, fmt.Errorf("negative expiry %q: use never, do_not_cache or a positive duration", s)
		}
		return Expiry(time.Duration(n) * time.Second), nil
	}
	if d, ok := parseDayWeek(s); ok {
		return Expiry(d), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad expiry %q: want a duration like 90s, 10m, 1h, 1d, seconds, never, do_not_cache or expire_immediately", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("negative expiry %q: use never, do_not_cache or a positive duration", s)
	}
	return Expiry(d), nil
}

// parseDayWeek handles "<n>d" and "<n>w", which time.ParseDuration lacks.
func parseDayWeek(s string) (time.Duration, bool) {
	if len(s) < 2 {
		return 0, false
	}
	unit := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[len(s)-1]]
	if unit == 0 {
		return 0, false
	}
	n, err := strconv.ParseFloat(s[:len(s)-1], 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(n * float64(unit)), true
}

// String renders e the way ParseExpiry reads it.
func (e Expiry) String() string {
	switch e {
	case NeverExpire:
		return "never"
	case DoNotCache:
		return "do_not_cache"
	case ExpireImmediately:
		return "expire_immediately"
	}
	if t, ok := e.At(); ok {
		return t.Format(time.RFC3339Nano)
	}
	return time.Duration(e).String()
}

// UnmarshalText lets YAML and JSON decoders read expiries.
func (e *Expiry) UnmarshalText(b []byte) error {
	v, err := ParseExpiry(string(b))
	if err != nil {
		return err
	}
	*e = v
	return nil
}

// MarshalText renders e for YAML and JSON.
func (e Expiry) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// ExpiresAt turns e into an absolute expiry for a response stored at t:
// the zero Time for NeverExpire, t itself for ExpireImmediately, the
// absolute time (or t, when it is past) for an ExpireAt. It must not be
// called with DoNotCache.
func (e Expiry) ExpiresAt(t time.Time) time.Time {
	if e == NeverExpire {
		return time.Time{}
	}
	if at, ok := e.At(); ok {
		if at.Before(t) {
			return t // already past: stored stale
		}
		return at
	}
	return t.Add(time.Duration(e))
}
