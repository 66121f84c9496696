package cache

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Expiry is how long a response stays fresh, with requests-cache's three
// special values. Positive values are durations.
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

// ParseExpiry accepts a Go duration ("90s", "1h30m"), a duration with a day
// or week unit ("1d", "2w"), plain seconds ("3600"), or one of the words
// "never", "do_not_cache" and "expire_immediately".
func ParseExpiry(s string) (Expiry, error) {
	s = strings.TrimSpace(s)
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
// the zero Time for NeverExpire, t itself for ExpireImmediately. It must not
// be called with DoNotCache.
func (e Expiry) ExpiresAt(t time.Time) time.Time {
	if e == NeverExpire {
		return time.Time{}
	}
	return t.Add(time.Duration(e))
}
