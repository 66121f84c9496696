package transfer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/transfer"
)

const fuzzHeader = `{"format":"cachegate-export","version":1,"exported_at":"2024-05-01T12:00:00Z","filter":{}}`

// fuzzLine is a valid entry line; the seeds damage it in several ways.
const fuzzLine = `{"key":"k1","base_key":"k1","upstream":"demo","method":"GET","url":"http://x/a?access_token=REDACTED",` +
	`"request_headers":null,"status":200,"headers":{"Content-Type":["text/plain"]},"content_type":"text/plain","size":5,` +
	`"request_time":"2024-05-01T12:00:00Z","created":"2024-05-01T12:00:00.123456789Z","expires":null,"etag":"\"v1\"",` +
	`"last_modified":"","hits":3,"last_hit":null,"reason":"expire_after","body_base64":"aGVsbG8="}`

// entryLines returns an NDJSON export's entry lines, sorted.
func entryLines(tb testing.TB, out []byte) []string {
	tb.Helper()
	s := strings.TrimSuffix(string(out), "\n")
	_, rest, _ := strings.Cut(s, "\n")
	if rest == "" {
		return nil
	}
	lines := strings.Split(rest, "\n")
	slices.Sort(lines)
	return lines
}

// Import reads files from anywhere (a user's disk, POST /api/import).
// Whatever it is given it must not panic; each entry line is either stored
// or counted as failed with its line number; a damaged line stops an import
// under Stop; and what was stored exports, imports and exports again to the
// same lines, in NDJSON, and exports as valid HAR.
func FuzzImport(f *testing.F) {
	for _, s := range []string{
		fuzzHeader + "\n" + fuzzLine + "\n",
		fuzzHeader + "\r\n\r\n" + fuzzLine + "\r\n",
		fuzzHeader + "\n" + strings.Replace(fuzzLine, `"size":5`, `"size":6`, 1),
		fuzzHeader + "\n" + strings.Replace(fuzzLine, `aGVsbG8=`, `aGVsbG8`, 1),
		fuzzHeader + "\n" + strings.Replace(fuzzLine, `"key":"k1"`, `"key":"../../etc/passwd"`, 1),
		fuzzHeader + "\n" + strings.Replace(fuzzLine, `"status":200`, `"status":-1`, 1),
		fuzzHeader + "\n" + strings.Replace(fuzzLine, `"created":"2024-05-01T12:00:00.123456789Z"`, `"created":null`, 1),
		fuzzHeader + "\n" + strings.Replace(fuzzLine, `"hits":3`, `"hits":-3`, 1),
		fuzzHeader + "\n" + strings.Replace(fuzzLine, `"headers":{"Content-Type":["text/plain"]}`, `"headers":{"A":"b"}`, 1),
		fuzzHeader + "\n" + fuzzLine[:len(fuzzLine)/2] + "\n" + fuzzLine,
		fuzzHeader + "\n" + `{"key":"k1","key":"k2"}`,
		fuzzHeader + "\n[1,2,3]\nnull\n\"x\"\n",
		`{"format":"cachegate-export","version":2}` + "\n" + fuzzLine,
		`{"format":"har"}`,
		"",
		"\n\n\n",
		fuzzHeader,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ctx := context.Background()
		b := memory.New(0)
		defer b.Close()
		res, err := transfer.Import(ctx, b, bytes.NewReader(in), transfer.ImportOptions{OnError: transfer.Skip, MaxLine: 1 << 16})
		if err != nil {
			if res.Done != 0 || res.Failed != 0 {
				// Only the header, a read error or the backend may stop a
				// skipping import, and the header comes before any entry.
				t.Fatalf("a skipping import stopped after entries: %v (%+v)", err, res.Progress)
			}
			return
		}
		if int64(len(res.Errors)) != min(res.Failed, transfer.MaxErrors) {
			t.Fatalf("%d errors listed, %d failed", len(res.Errors), res.Failed)
		}
		for _, e := range res.Errors {
			if e.Line < 2 || e.Err == nil {
				t.Fatalf("entry error %v without a line after the header or a cause", e)
			}
		}

		// Under Stop, the first damaged line is the error.
		stop := memory.New(0)
		defer stop.Close()
		sres, serr := transfer.Import(ctx, stop, bytes.NewReader(in), transfer.ImportOptions{MaxLine: 1 << 16})
		var ee *transfer.EntryError
		switch {
		case res.Failed == 0 && serr != nil:
			t.Fatalf("Stop failed where Skip found nothing wrong: %v", serr)
		case res.Failed > 0 && !errors.As(serr, &ee):
			t.Fatalf("Stop on a damaged input returned %v, want an *EntryError", serr)
		case res.Failed > 0 && ee.Line != res.Errors[0].Line:
			t.Fatalf("Stop stopped on line %d, Skip's first failure is line %d", ee.Line, res.Errors[0].Line)
		case res.Failed > 0 && sres.Failed != 1:
			t.Fatalf("Stop counted %d failures", sres.Failed)
		}

		out := new(bytes.Buffer)
		eres, err := transfer.Export(ctx, b, out, transfer.ExportOptions{})
		if err != nil {
			t.Fatalf("export of what was imported: %v", err)
		}
		again := memory.New(0)
		defer again.Close()
		ires, err := transfer.Import(ctx, again, bytes.NewReader(out.Bytes()), transfer.ImportOptions{})
		if err != nil {
			t.Fatalf("import of an export: %v\n%s", err, out)
		}
		if ires.Done != eres.Done {
			t.Fatalf("exported %d entries, imported %d", eres.Done, ires.Done)
		}
		out2 := new(bytes.Buffer)
		if _, err := transfer.Export(ctx, again, out2, transfer.ExportOptions{}); err != nil {
			t.Fatal(err)
		}
		if a, b := entryLines(t, out.Bytes()), entryLines(t, out2.Bytes()); !slices.Equal(a, b) {
			t.Fatalf("round trip changed the entries:\n%q\n%q", a, b)
		}

		har := new(bytes.Buffer)
		if _, err := transfer.Export(ctx, b, har, transfer.ExportOptions{Format: transfer.HAR}); err != nil {
			t.Fatalf("HAR export: %v", err)
		}
		var doc struct {
			Log struct {
				Entries []struct {
					Cachegate struct {
						Key string `json:"key"`
					} `json:"_cachegate"`
				} `json:"entries"`
			} `json:"log"`
		}
		if err := json.Unmarshal(har.Bytes(), &doc); err != nil {
			t.Fatalf("HAR export is not JSON: %v\n%s", err, har)
		}
		if int64(len(doc.Log.Entries)) != eres.Done {
			t.Fatalf("HAR holds %d entries, NDJSON %d", len(doc.Log.Entries), eres.Done)
		}
	})
}
