// Package static holds the admin UI's stylesheet, scripts and vendored
// libraries, embedded into the binary so the UI needs no CDN and no files
// beside the executable.
//
// Assets are addressed by content: URL("css/app.css") gives
// "/static/css/app.<hash>.css", and Handler serves that name with a
// one-year immutable cache lifetime. A change to a file changes its URL, so
// browsers never hold a stale copy and never ask twice for a current one.
package static

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed css js vendor/htmx
var files embed.FS

// Prefix is the URL path the assets are served under.
const Prefix = "/static/"

// hashLen is how many hex digits of the SHA-256 go into a URL: enough that
// two versions of one file never collide, short enough to read.
const hashLen = 10

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	gzipped     []byte // nil when compressing does not make it smaller
	contentType string
	hash        string
}

// assets maps a file's name ("css/app.css") to its asset; versioned maps
// its hashed name ("css/app.3f2a1c9d0e.css") to the same. Both are built
// once at start and only read afterwards.
var assets, versioned = load()

func load() (map[string]*asset, map[string]*asset) {
	byName, byVersion := map[string]*asset{}, map[string]*asset{}
	err := fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := files.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		a := &asset{body: body, hash: hex.EncodeToString(sum[:])[:hashLen], contentType: contentType(name)}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if _, err := zw.Write(body); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		if buf.Len() < len(body) {
			a.gzipped = buf.Bytes()
		}
		byName[name] = a
		byVersion[hashedName(name, a.hash)] = a
		return nil
	})
	if err != nil {
		// The files are compiled in: failing to read them is a broken build.
		panic("static: " + err.Error())
	}
	return byName, byVersion
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".css":
		return "text/css; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// hashedName puts hash before the file's extension: js/app.js →
// js/app.<hash>.js.
func hashedName(name, hash string) string {
	ext := path.Ext(name)
	return strings.TrimSuffix(name, ext) + "." + hash + ext
}

// URL returns the content-addressed URL of the embedded file name (for
// example "css/app.css"). A name that is not embedded is a programming
// error that would show as a broken page, so it panics: the view tests
// render every page and catch it before a user could.
func URL(name string) string {
	a, ok := assets[name]
	if !ok {
		panic("static: no embedded asset " + strconv.Quote(name))
	}
	return Prefix + hashedName(name, a.hash)
}

// Handler serves the assets by their hashed names, relative to Prefix
// (mount it with http.StripPrefix). An unknown name, or a name with an
// outdated hash, is 404: answering it with today's content under a URL
// promised immutable would pin the wrong bytes in caches for a year.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		a, ok := versioned[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.Error(w, "no such asset", http.StatusNotFound)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("ETag", `"`+a.hash+`"`)
		h.Set("Vary", "Accept-Encoding")
		if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, `"`+a.hash+`"`) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		body := a.body
		if a.gzipped != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			body = a.gzipped
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(body)
	})
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip: named
// (or "*") with a q-value above zero.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "*" {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(p, "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		return q > 0
	}
	return false
}

// Size returns the bytes the named asset takes on the wire: compressed
// when gzip makes it smaller. It is how tests keep the page weight in
// check.
func Size(name string) int {
	a, ok := assets[name]
	if !ok {
		return 0
	}
	if a.gzipped != nil {
		return len(a.gzipped)
	}
	return len(a.body)
}
