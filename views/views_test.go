package views_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/a-h/templ"
	"github.com/cachegate/cachegate/views"
)

// render renders c and parses the HTML.
func render(tb testing.TB, c templ.Component) *goquery.Document {
	tb.Helper()
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		tb.Fatal(err)
	}
	doc, err := goquery.NewDocumentFromReader(&buf)
	if err != nil {
		tb.Fatal(err)
	}
	return doc
}

func byTestID(doc *goquery.Document, id string) *goquery.Selection {
	return doc.Find(`[data-testid="` + id + `"]`)
}

func TestSignIn(t *testing.T) {
	tests := []struct {
		name      string
		view      views.SignInView
		wantError string
		signedOut bool
	}{
		{"plain", views.SignInView{CSRFToken: "tok", Next: "/backends"}, "", false},
		{"failed", views.SignInView{CSRFToken: "tok", Next: "/", Error: "That token is not the admin token."}, "That token is not the admin token.", false},
		{"signed out", views.SignInView{CSRFToken: "tok", Next: "/", SignedOut: true}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := render(t, views.SignIn(tt.view))
			form := byTestID(doc, "signin-form")
			if got := form.AttrOr("method", "") + " " + form.AttrOr("action", ""); got != "post /signin" {
				t.Fatalf("form %q, want post /signin", got)
			}
			if got := form.Find(`input[name="csrf_token"]`).AttrOr("value", ""); got != tt.view.CSRFToken {
				t.Errorf("csrf_token %q, want %q", got, tt.view.CSRFToken)
			}
			if got := form.Find(`input[name="next"]`).AttrOr("value", ""); got != tt.view.Next {
				t.Errorf("next %q, want %q", got, tt.view.Next)
			}
			if got := form.Find(`input[name="token"]`).AttrOr("type", ""); got != "password" {
				t.Errorf("token field type %q, want password", got)
			}
			if got := strings.TrimSpace(byTestID(doc, "signin-error").Text()); got != tt.wantError {
				t.Errorf("error %q, want %q", got, tt.wantError)
			}
			if got := byTestID(doc, "signed-out").Length() == 1; got != tt.signedOut {
				t.Errorf("signed-out notice %v, want %v", got, tt.signedOut)
			}
			if byTestID(doc, "nav").Length() != 0 {
				t.Error("the sign-in page shows the navigation to someone not signed in")
			}
		})
	}
}

func TestAuthState(t *testing.T) {
	tests := []struct {
		name string
		auth views.Auth
		want string // the data-testid shown
	}{
		{"loopback without token", views.Auth{}, "auth-local"},
		{"signed in", views.Auth{TokenRequired: true, SignedIn: true}, "auth-signed-in"},
		{"not signed in", views.Auth{TokenRequired: true}, "signin-link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := views.Layout{Title: "T", Path: "/", Backend: "default", DefaultBackend: "default", CSRFToken: "tok", Auth: tt.auth}
			doc := render(t, views.Page(l))
			auth := byTestID(doc, "auth")
			for _, id := range []string{"auth-local", "auth-signed-in", "signin-link"} {
				if got, want := auth.Find(`[data-testid="`+id+`"]`).Length() == 1, id == tt.want; got != want {
					t.Errorf("%s shown: %v, want %v", id, got, want)
				}
			}
			if tt.want == "auth-signed-in" {
				form := auth.Find("form")
				if form.AttrOr("method", "")+" "+form.AttrOr("action", "") != "post /signout" {
					t.Errorf("sign-out form %q %q", form.AttrOr("method", ""), form.AttrOr("action", ""))
				}
				if got := form.Find(`input[name="csrf_token"]`).AttrOr("value", ""); got != "tok" {
					t.Errorf("sign-out csrf_token %q", got)
				}
			}
		})
	}
}

func TestBackendPickerKeepsTheQuery(t *testing.T) {
	l := views.Layout{
		Title: "Entries", Path: "/entries", Backend: "b", DefaultBackend: "default",
		Query:    map[string][]string{"sort": {"size"}, "url": {"*/v2/*"}, "backend": {"b"}},
		Backends: []views.BackendChoice{{Name: "default", Kind: "sqlite", Entries: 3, Bytes: 2048}, {Name: "b", Kind: "memory"}},
	}
	doc := render(t, views.Page(l))
	form := byTestID(doc, "backend-picker")
	if got := form.AttrOr("action", ""); got != "/entries" {
		t.Fatalf("action %q, want /entries", got)
	}
	var hidden []string
	form.Find(`input[type="hidden"]`).Each(func(_ int, s *goquery.Selection) {
		hidden = append(hidden, s.AttrOr("name", "")+"="+s.AttrOr("value", ""))
	})
	if got, want := strings.Join(hidden, "&"), "sort=size&url=*/v2/*"; got != want {
		t.Errorf("hidden fields %q, want %q (and no second backend)", got, want)
	}
	if got, want := strings.TrimSpace(byTestID(doc, "backend-option-default").Text()), "default — sqlite · 3 entries · 2.0 KiB"; got != want {
		t.Errorf("option %q, want %q", got, want)
	}
	if got := form.Find("option[selected]").AttrOr("value", ""); got != "b" {
		t.Errorf("selected %q, want b", got)
	}
	if got, want := byTestID(doc, "nav-entries").AttrOr("href", ""), "/entries?backend=b"; got != want {
		t.Errorf("nav link %q, want %q", got, want)
	}
}

func TestEmptyState(t *testing.T) {
	doc := render(t, views.EmptyState("Nothing cached yet", "Send a request through /fetch/."))
	if got := strings.TrimSpace(byTestID(doc, "empty-state").Find("h2").Text()); got != "Nothing cached yet" {
		t.Fatalf("title %q", got)
	}
}

func TestFormat(t *testing.T) {
	tests := []struct{ got, want string }{
		{views.Bytes(0), "0 B"},
		{views.Bytes(1536), "1.5 KiB"},
		{views.Bytes(-5), "0 B"},
		{views.Count(1234567), "1,234,567"},
		{views.Percent(0.5), "50.0 %"},
		{views.Percent(0), "0.0 %"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestRelativeTimes(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name, got, want string
	}{
		{"ago never", views.Ago(time.Time{}, now), "never"},
		{"just now", views.Ago(now.Add(-300*time.Millisecond), now), "just now"},
		{"seconds", views.Ago(now.Add(-45*time.Second), now), "45 s ago"},
		{"minutes", views.Ago(now.Add(-5*time.Minute-10*time.Second), now), "5 min ago"},
		{"hours", views.Ago(now.Add(-3*time.Hour), now), "3 h ago"},
		{"days", views.Ago(now.Add(-50*time.Hour), now), "2 d ago"},
		{"future", views.Ago(now.Add(90*time.Second), now), "in 1 min"},
		{"expiry never", views.Expiry(time.Time{}, now), "never"},
		{"expiry future", views.Expiry(now.Add(5*time.Minute), now), "in 5 min"},
		{"expired", views.Expiry(now.Add(-2*time.Hour), now), "expired 2 h ago"},
		{"expires now", views.Expiry(now, now), "expired 0 s ago"},
		{"utc", views.UTC(time.Date(2026, 12, 3, 9, 10, 4, 0, time.FixedZone("CET", 3600))), "2026-12-03 08:10:04 UTC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestTimestamp(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	doc := render(t, views.Timestamp(now.Add(-5*time.Minute), now))
	tm := doc.Find("time")
	if got, want := tm.AttrOr("datetime", ""), "2026-12-03T07:55:00Z"; got != want {
		t.Errorf("datetime %q, want %q", got, want)
	}
	if got, want := strings.TrimSpace(tm.Text()), "5 min ago"; got != want {
		t.Errorf("text %q, want %q", got, want)
	}
	if got := strings.TrimSpace(render(t, views.Timestamp(time.Time{}, now)).Text()); got != "never" {
		t.Errorf("zero time shows %q", got)
	}
}
