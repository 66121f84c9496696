package handlers

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache"
)

// The audit counts a secret-looking parameter only when its value is in
// the clear (one that ignored_parameters redacted is fine), and entries
// stored from a request with credentials.
func TestPrivacyAuditCountsOnlyClearSecrets(t *testing.T) {
	b := memory.New(0)
	t.Cleanup(func() { b.Close() })
	now := time.Now()
	for i, u := range []string{
		"http://up/a?api_key=" + "REDACTED",
		"http://up/b?api_key=abc",
		"http://up/c?access_token=xyz&x=1",
		"http://up/d?page=2",
	} {
		e := &cache.Entry{Key: cache.MakeKey("GET", u, string(rune('a'+i))), Upstream: "up", Method: "GET", URL: u,
			Status: 200, Header: http.Header{}, Body: []byte("x"), Size: 1, Created: now, RequestTime: now}
		e.BaseKey = e.Key
		if i == 3 {
			e.RequestHeader = http.Header{"Authorization": {"REDACTED"}}
		}
		if err := b.Put(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	a := &API{}
	got := map[string]int64{}
	for _, r := range a.privacyAudit(context.Background(), b).Rows {
		got[r.ID] = r.Count
	}
	want := map[string]int64{"param-key": 1, "param-token": 1, "credentials": 1}
	if len(got) != len(want) || got["param-key"] != 1 || got["param-token"] != 1 || got["credentials"] != 1 {
		t.Fatalf("audit %v, want %v", got, want)
	}
}

// The audit's credentials row links to a filter the listing takes.
func TestCredentialsFilterParameter(t *testing.T) {
	q := privacyQuery("credentials")
	f, err := parseFilter(q, "", time.Now())
	if err != nil || !f.Credentials || f.SelectsAll() {
		t.Fatalf("parseFilter(%v) = %+v, %v", q, f, err)
	}
	if _, err := parseFilter(map[string][]string{"credentials": {"yes"}}, "", time.Now()); err == nil {
		t.Fatal("credentials=yes accepted")
	}
}
