package cache_test

import (
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
)

func TestParseExpiry(t *testing.T) {
	at := time.Date(2027, 1, 31, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]cache.Expiry{
		"90s": cache.Expiry(90 * time.Second), "1d": cache.Expiry(24 * time.Hour), "3600": cache.Expiry(time.Hour),
		"never": cache.NeverExpire, "do_not_cache": cache.DoNotCache, "expire_immediately": cache.ExpireImmediately,
		"2027-01-31T12:00:00Z": cache.ExpireAt(at), "2027-01-31T13:00:00+01:00": cache.ExpireAt(at),
	} {
		got, err := cache.ParseExpiry(in)
		if err != nil || got != want {
			t.Errorf("ParseExpiry(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, err := cache.ParseExpiry(got.String()); err != nil || back != got {
			t.Errorf("%q renders as %q, which reads back as %v, %v", in, got.String(), back, err)
		}
	}
	for _, bad := range []string{"", "soon", "-5s", "2027-01-31T25:00:00Z", "2027-01-31T12:00"} {
		if _, err := cache.ParseExpiry(bad); err == nil {
			t.Errorf("ParseExpiry(%q) accepted", bad)
		}
	}
}

// An absolute expiry keeps a response fresh until its time; one already
// past stores it stale. It is none of the special values.
func TestAbsoluteExpiry(t *testing.T) {
	at := time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)
	e := cache.ExpireAt(at)
	if got, ok := e.At(); !ok || !got.Equal(at) {
		t.Fatalf("At() = %v, %v", got, ok)
	}
	for _, special := range []cache.Expiry{cache.NeverExpire, cache.DoNotCache, cache.ExpireImmediately, cache.Expiry(time.Hour)} {
		if e == special {
			t.Fatalf("ExpireAt collides with %v", special)
		}
		if _, ok := special.At(); ok {
			t.Errorf("%v reads as an absolute expiry", special)
		}
	}
	stored := at.Add(-time.Hour)
	if got := e.ExpiresAt(stored); !got.Equal(at) {
		t.Errorf("stored an hour before: expires %v, want %v", got, at)
	}
	if late := at.Add(time.Hour); !e.ExpiresAt(late).Equal(late) {
		t.Errorf("stored after the time: expires %v, want at once", e.ExpiresAt(late))
	}
	if e >= 0 {
		t.Error("an absolute expiry passes the e < 0 checks that refuse it as a staleness or a duration")
	}
	var s cache.Staleness
	if err := s.UnmarshalText([]byte("2027-01-31T00:00:00Z")); err == nil {
		t.Error("a date-time accepted as a maximum staleness")
	}
	if far := cache.ExpireAt(time.Date(2262, 4, 11, 23, 47, 16, 0, time.UTC)); far >= cache.DoNotCache {
		t.Errorf("the latest time overflows into the special values: %d", far)
	}
}
