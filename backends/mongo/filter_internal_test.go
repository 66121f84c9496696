package mongo

import (
	"regexp"
	"testing"

	"github.com/cachegate/cachegate/cache"
)

// TestGlobRegexAgreesWithGlob checks the translation with Go's regexp
// (the same RE2 syntax FerretDB runs, and a subset of MongoDB's PCRE).
func TestGlobRegexAgreesWithGlob(t *testing.T) {
	patterns := []string{
		"*", "?", "", "a*", "*a", "a?c", "*/repos/*", "http://x.y/a+b(c)[d]{e}|^$\\*",
		"*.json", "a.c", "*%20*", "**", "?*?",
	}
	inputs := []string{
		"", "a", "abc", "aXc", "a.c", "https://api.github.com/repos/o/r",
		"http://x.y/a+b(c)[d]{e}|^$\\zz", "file.json", "filexjson", "a%20b", "line\nbreak",
	}
	for _, p := range patterns {
		re := regexp.MustCompile("(?s)" + globRegex(p))
		for _, s := range inputs {
			if got, want := re.MatchString(s), cache.Glob(p, s); got != want {
				t.Errorf("pattern %q on %q: regex %v, Glob %v (regex %s)", p, s, got, want, globRegex(p))
			}
		}
	}
}
