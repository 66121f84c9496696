package fastlane

import (
	"net/url"
	"reflect"
	"testing"
)

// parsePlainTarget must give exactly what url.ParseRequestURI gives for
// every target it accepts.
func FuzzPlainTargetAsParseRequestURI(f *testing.F) {
	for _, s := range []string{
		"/fetch/up/get", "/fetch/up/get?", "/fetch/up/get?a=1&b=2", "/fetch/up/a??", "/fetch/up/a?b?",
		"/", "//x", "/a%20b", "/a b", "/a?x#y", "/a#y", "/ä", "*", "http://h/a", "/a?\x01", "/a;b", "/a:b",
		"/fetch/up/bytes/1k", "/fetch/up/a/../b?c=%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		var got url.URL
		if !parsePlainTarget(target, &got) {
			return
		}
		want, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatalf("%q: accepted, but ParseRequestURI fails: %v", target, err)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("%q: got %#v, ParseRequestURI %#v", target, got, *want)
		}
		if got.EscapedPath() != want.EscapedPath() || got.RequestURI() != want.RequestURI() {
			t.Fatalf("%q: EscapedPath %q / %q, RequestURI %q / %q", target, got.EscapedPath(), want.EscapedPath(), got.RequestURI(), want.RequestURI())
		}
	})
}

// The commonest targets take the allocation-free path at all.
func TestPlainTargets(t *testing.T) {
	for _, s := range []string{"/fetch/up/get", "/fetch/up/bytes/1k?x=1", "/fetch/up/a?"} {
		var u url.URL
		if !parsePlainTarget(s, &u) {
			t.Errorf("%q not taken as plain", s)
		}
	}
	for _, s := range []string{"*", "http://h/a", "/a%20b", "/ä", "/a?\x7f"} {
		var u url.URL
		if parsePlainTarget(s, &u) {
			t.Errorf("%q taken as plain", s)
		}
	}
}
