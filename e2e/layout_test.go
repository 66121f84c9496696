package e2e_test

import (
	"bytes"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const modulePath = "github.com/cachegate/cachegate"

// floors place every package of the product (bench/ is a module of its
// own) as the README's "Layout" section describes: a package imports only
// packages on lower floors, so cache/ stays the ground floor and nothing
// depends on the assembly above it. The longest matching prefix decides.
var floors = map[string]int{
	"cache":             0,
	"migrations":        0,
	"static":            0,
	"backends/internal": 1,
	"cache/cachetest":   2,
	"backends":          2,
	"transfer":          2,
	"jobs":              2,
	"views":             2,
	"gateway/expr":      2,
	"gateway":           3,
	"web/fastlane":      4,
	"metrics":           4,
	"handlers":          4,
	"web":               5,
	"cmd":               6,
}

func floorOf(pkg string) (int, bool) {
	best, floor := "", 0
	for prefix, f := range floors {
		if (pkg == prefix || strings.HasPrefix(pkg, prefix+"/")) && len(prefix) > len(best) {
			best, floor = prefix, f
		}
	}
	return floor, best != ""
}

// TestLayout holds the layout to what the README promises: the import
// floors above, and no hand-written production file over 500 lines.
func TestLayout(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	imports := map[string]map[string]bool{} // package -> cachegate packages it imports
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == "bench" || rel == "e2e" || strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !strings.HasSuffix(path, "_templ.go") {
			if n := bytes.Count(src, []byte("\n")); n > 500 {
				t.Errorf("%s: %d lines; split it (no production file over 500 lines)", rel, n)
			}
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, src, parser.ImportsOnly)
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(filepath.Dir(rel))
		if imports[pkg] == nil {
			imports[pkg] = map[string]bool{}
		}
		for _, imp := range f.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			if rest, ok := strings.CutPrefix(p, modulePath+"/"); ok {
				imports[pkg][rest] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var pkgs []string
	for pkg := range imports {
		pkgs = append(pkgs, pkg)
	}
	sort.Strings(pkgs)
	if len(pkgs) < 10 {
		t.Fatalf("found only %v: is the test run from e2e/?", pkgs)
	}
	for _, pkg := range pkgs {
		floor, ok := floorOf(pkg)
		if !ok {
			t.Errorf("package %s has no floor: place it in floors (and the README's Layout)", pkg)
			continue
		}
		for imp := range imports[pkg] {
			if f, ok := floorOf(imp); ok && f >= floor {
				t.Errorf("%s (floor %d) imports %s (floor %d): imports point down, to lower floors only", pkg, floor, imp, f)
			}
		}
	}
}
