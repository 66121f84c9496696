package handlers

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/views"
)

// inlineImages are the image types the viewer shows with <img>: raster
// formats, which cannot run script. SVG is not among them.
var inlineImages = map[string]bool{
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true,
	"image/avif": true, "image/bmp": true, "image/x-icon": true, "image/vnd.microsoft.icon": true,
}

// mediaType is a Content-Type without parameters, lower case.
func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt, _, _ = strings.Cut(ct, ";")
	}
	return strings.ToLower(strings.TrimSpace(mt))
}

// activeType says whether a browser would run or render content of this
// type as a document: such bodies are shown as source text only.
func activeType(mt string) bool {
	return strings.Contains(mt, "html") || strings.Contains(mt, "svg") || strings.Contains(mt, "xml")
}

func textualType(mt string) bool {
	return strings.HasPrefix(mt, "text/") || strings.Contains(mt, "json") || strings.Contains(mt, "xml") ||
		strings.Contains(mt, "javascript") || strings.Contains(mt, "yaml") || strings.Contains(mt, "csv") ||
		mt == "application/x-www-form-urlencoded"
}

// bodyView decides how the viewer shows e's body: JSON pretty-printed and
// coloured, text as text (HTML, SVG and XML too, escaped: never rendered),
// raster images by <img>, anything else as a hex dump of the first KiB.
func bodyView(e *cache.Entry, download, image string) views.BodyView {
	v := views.BodyView{DownloadURL: download, Size: int64(len(e.Body))}
	if len(e.Body) == 0 {
		v.Kind = views.BodyEmpty
		return v
	}
	mt := mediaType(e.Header.Get("Content-Type"))
	if mt == "" {
		mt = e.ContentType
	}
	if inlineImages[mt] {
		v.Kind, v.ImageURL, v.Shown = views.BodyImage, image, v.Size
		return v
	}
	body, decoded, err := decodedPrefix(e.Body, e.Header.Get("Content-Encoding"), maxIndent)
	var notes []string
	if err != nil {
		notes = append(notes, "Stored "+e.Header.Get("Content-Encoding")+"-encoded and not decoded here ("+err.Error()+"): a hex dump of the first KiB as stored.")
		hexView(&v, e.Body)
		v.Note = strings.Join(notes, " ")
		return v
	}
	if decoded {
		notes = append(notes, "Stored "+e.Header.Get("Content-Encoding")+"-compressed; shown decompressed.")
	}
	if strings.Contains(mt, "json") && len(body) <= maxIndent {
		var out bytes.Buffer
		if err := json.Indent(&out, body, "", "  "); err == nil {
			pretty := out.String()
			v.Kind, v.Shown = views.BodyJSON, int64(len(pretty))
			if len(pretty) > maxPretty {
				// At a line's end, so no string is cut in two.
				cut := strings.LastIndexByte(pretty[:maxPretty], '\n')
				if cut <= 0 {
					cut = maxPretty
				}
				pretty = string(trimPartialRune([]byte(pretty[:cut])))
				v.Shown = int64(len(pretty))
				notes = append(notes, fmt.Sprintf("Showing the first %s (%d lines) of the pretty-printed body: download it for all of it.",
					views.Bytes(v.Shown), strings.Count(pretty, "\n")+1))
			}
			v.JSON = jsonTokens(pretty)
			v.Note = strings.Join(notes, " ")
			return v
		}
		notes = append(notes, "Not valid JSON: shown as text.")
	}
	whole := len(body) <= maxPretty
	if !whole {
		body = body[:maxPretty]
	}
	text := textualType(mt) || (mt == "" && utf8.Valid(trimPartialRune(body)))
	switch {
	case text:
		s := trimPartialRune(body)
		if !utf8.Valid(s) {
			notes = append(notes, "Not valid UTF-8 text: a hex dump of the first KiB.")
			hexView(&v, body)
			break
		}
		v.Kind, v.Text, v.Shown = views.BodyText, string(s), int64(len(s))
		if activeType(mt) {
			notes = append(notes, "Shown as source text: an "+mt+" body is never rendered on this page.")
		}
	default:
		hexView(&v, body)
	}
	if !whole && v.Kind != views.BodyHex {
		notes = append(notes, "Showing the first "+views.Bytes(v.Shown)+": download the body for all of it.")
	}
	if v.Kind == views.BodyHex && len(body) > maxHex {
		notes = append(notes, "The first "+views.Bytes(maxHex)+" of "+views.Bytes(v.Size)+" as a hex dump; download the body for all of it.")
	}
	v.Note = strings.Join(notes, " ")
	return v
}

func hexView(v *views.BodyView, b []byte) {
	if len(b) > maxHex {
		b = b[:maxHex]
	}
	v.Kind, v.Text, v.Shown = views.BodyHex, hex.Dump(b), int64(len(b))
}

// decodedPrefix returns up to limit+1 bytes of body with its
// Content-Encoding undone (gzip, deflate), so the viewer can show text;
// decoded says whether there was anything to undo. An encoding it cannot
// undo is an error.
func decodedPrefix(body []byte, encoding string, limit int) (out []byte, decoded bool, err error) {
	var rd io.Reader
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		return body, false, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, false, err
		}
		rd = zr
	case "deflate":
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, false, err
		}
		rd = zr
	default:
		return nil, false, fmt.Errorf("%s is not decoded by the viewer", encoding)
	}
	out, err = io.ReadAll(io.LimitReader(rd, int64(limit)+1))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, false, err
	}
	return out, true, nil
}

// trimPartialRune drops an incomplete UTF-8 sequence a cut left at the
// end of b.
func trimPartialRune(b []byte) []byte {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		r, size := utf8.DecodeLastRune(b[:len(b)-i+1])
		if r != utf8.RuneError || size > 1 {
			return b[:len(b)-i+1]
		}
	}
	return b
}

// printable shows a stored request body: text as it is, anything else as
// a hex dump of its first limit bytes.
func printable(b []byte, limit int) string {
	if utf8.Valid(b) {
		return string(b)
	}
	if len(b) > limit {
		b = b[:limit]
	}
	return hex.Dump(b)
}

// jsonTokens splits indented JSON into tokens to colour. The input is
// valid JSON (json.Indent wrote it).
func jsonTokens(s string) []views.JSONToken {
	out := make([]views.JSONToken, 0, len(s)/6)
	isSpace := func(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }
	for i := 0; i < len(s); {
		c := s[i]
		j := i + 1
		class := ""
		switch {
		case isSpace(c):
			for j < len(s) && isSpace(s[j]) {
				j++
			}
		case c == '"':
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(s))
			class = "s"
			k := j
			for k < len(s) && isSpace(s[k]) {
				k++
			}
			if k < len(s) && s[k] == ':' {
				class = "k"
			}
		case strings.IndexByte("{}[]:,", c) >= 0:
			class = "p"
		default:
			for j < len(s) && !isSpace(s[j]) && strings.IndexByte("{}[]:,", s[j]) < 0 {
				j++
			}
			switch c {
			case 't', 'f':
				class = "b"
			case 'n':
				class = "z"
			default:
				class = "n"
			}
		}
		if class == "p" {
			class = "" // punctuation is not coloured: one token with the white space around it
		}
		if n := len(out); class == "" && n > 0 && out[n-1].Class == "" {
			// Contiguous: the previous plain token runs on to j.
			out[n-1].Text = s[i-len(out[n-1].Text) : j]
		} else {
			out = append(out, views.JSONToken{Class: class, Text: s[i:j]})
		}
		i = j
	}
	return out
}

// downloadName is the file name a downloaded body is saved under: the
// URL's last path segment, made safe, with an extension for its type.
func downloadName(e *cache.Entry) string {
	name := "body"
	if u, err := url.Parse(e.URL); err == nil {
		if base := path.Base(u.Path); base != "/" && base != "." && base != "" {
			name = base
		}
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x80 && (r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, name)
	name = strings.TrimLeft(name, ".")
	if name == "" {
		name = "body"
	}
	if path.Ext(name) == "" {
		if exts, _ := mime.ExtensionsByType(mediaType(e.Header.Get("Content-Type"))); len(exts) > 0 {
			name += preferredExt(exts)
		}
	}
	return name
}

// preferredExt picks the usual extension of a type: mime lists several
// in no useful order (".jfif" before ".jpg").
func preferredExt(exts []string) string {
	for _, want := range []string{".json", ".html", ".txt", ".jpg", ".png", ".gif", ".svg", ".xml", ".js", ".css", ".webp", ".pdf"} {
		if slices.Contains(exts, want) {
			return want
		}
	}
	return exts[0]
}
