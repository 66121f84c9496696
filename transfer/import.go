package transfer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/cachegate/cachegate/cache"
)

// DefaultMaxLine bounds one NDJSON line when ImportOptions.MaxLine is 0:
// room for a body of 192 MiB in base64, three times the gateway's default
// max_body_size.
const DefaultMaxLine = 256 << 20

// ImportOptions configure Import.
type ImportOptions struct {
	// OnError says whether a damaged line stops the import (the default)
	// or is recorded in Result and skipped.
	OnError ErrorMode
	// MaxLine caps the length of one line in bytes (DefaultMaxLine when
	// 0). A longer line is damaged: it is skipped without being held in
	// memory.
	MaxLine int
	// Progress, when set, is called after every entry line, on the
	// calling goroutine; it should be quick.
	Progress func(Progress)
}

// Import reads an NDJSON export (see the package documentation) from r
// and puts each entry into b, replacing entries with the same keys. It
// reads line by line, so memory is bounded by the longest line, not the
// input. Each entry is checked (key, required fields, base64, size) and
// stored with one Put, so an entry is stored whole or not at all.
//
// A damaged entry line is an *EntryError carrying the line number: under
// OnError Skip it is counted in Result and the import goes on; under Stop
// Import returns it, wrapped. A missing or unreadable header, an unknown
// version, a read error, a failing backend or the end of ctx always stop
// the import. Entries put before a stop stay put.
func Import(ctx context.Context, b cache.Backend, r io.Reader, opts ImportOptions) (Result, error) {
	t := newTracker(opts.Progress)
	maxLine := opts.MaxLine
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	lr := &lineReader{r: bufio.NewReaderSize(r, 256<<10), max: maxLine}
	if err := readHeader(lr); err != nil {
		return t.result(), fmt.Errorf("transfer: import: %w", err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return t.result(), fmt.Errorf("transfer: import: line %d: %w", lr.n+1, err)
		}
		line, err := lr.next()
		t.res.Read = lr.read
		if err == io.EOF {
			return t.result(), nil
		}
		var e *cache.Entry
		if err == nil {
			e, err = decodeEntry(line)
		}
		if err == nil {
			err = b.Put(ctx, e)
			if err != nil && ctx.Err() != nil {
				return t.result(), fmt.Errorf("transfer: import: line %d: %w", lr.n, ctx.Err())
			}
			if err != nil && !errors.Is(err, cache.ErrInvalid) {
				// The backend failing is not the line's fault: going on
				// would only fail every following line the same way.
				return t.result(), fmt.Errorf("transfer: import: line %d: put %q: %w", lr.n, e.Key, err)
			}
		}
		if errors.Is(err, errReadFailed) {
			return t.result(), fmt.Errorf("transfer: import: line %d: %w", lr.n, err)
		}
		if err != nil {
			ee := &EntryError{Line: lr.n, Err: err}
			if e != nil {
				ee.Key = e.Key
			}
			t.fail(ee)
			if opts.OnError == Stop {
				return t.result(), fmt.Errorf("transfer: import: %w", ee)
			}
			continue
		}
		t.done(int64(len(e.Body)))
	}
}

// errReadFailed marks an error of the underlying reader, which no later
// line can recover from.
var errReadFailed = errors.New("read failed")

// errLineTooLong marks a line over the limit.
var errLineTooLong = errors.New("line too long")

// lineReader reads lines of any length up to max, reusing its buffer.
type lineReader struct {
	r    *bufio.Reader
	max  int
	buf  []byte
	n    int64 // number of the line last returned, 1-based
	read int64 // bytes consumed
}

// next returns the next non-blank line without its line ending, or io.EOF.
// A line over the limit is consumed and reported as errLineTooLong; a
// reader failure wraps errReadFailed.
func (l *lineReader) next() ([]byte, error) {
	for {
		line, err := l.line()
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(line)) > 0 {
			return line, nil
		}
	}
}

func (l *lineReader) line() ([]byte, error) {
	// A buffer grown by one huge line is dropped afterwards rather than
	// kept for the rest of the import.
	if cap(l.buf) > 4<<20 {
		l.buf = nil
	}
	l.buf = l.buf[:0]
	tooLong := false
	for {
		chunk, err := l.r.ReadSlice('\n')
		l.read += int64(len(chunk))
		if !tooLong && len(l.buf)+len(chunk) > l.max+2 { // +2: the line ending
			tooLong, l.buf = true, l.buf[:0]
		}
		if !tooLong {
			l.buf = append(l.buf, chunk...)
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && len(chunk) == 0 && len(l.buf) == 0 && !tooLong:
			return nil, io.EOF
		case err != nil && err != io.EOF:
			l.n++
			return nil, fmt.Errorf("%w: %w", errReadFailed, err)
		}
		l.n++
		if tooLong {
			return nil, fmt.Errorf("%w (over %d bytes)", errLineTooLong, l.max)
		}
		return bytes.TrimRight(l.buf, "\r\n"), nil
	}
}

// readHeader reads and checks the header line.
func readHeader(l *lineReader) error {
	line, err := l.next()
	if err == io.EOF {
		return errors.New("empty input: want a cachegate-export header line")
	}
	if err != nil {
		return fmt.Errorf("line %d: %w", l.n, err)
	}
	var h struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(line, &h); err != nil || h.Format != FormatName {
		return fmt.Errorf("line %d: not a cachegate export: want a header line like {\"format\":%q,\"version\":%d}", l.n, FormatName, Version)
	}
	if h.Version != Version {
		return fmt.Errorf("line %d: export format version %d is not supported (this cachegate reads version %d)", l.n, h.Version, Version)
	}
	return nil
}

// decodeEntry parses and validates one entry line.
func decodeEntry(line []byte) (*cache.Entry, error) {
	var rec record
	if err := json.Unmarshal(line, &rec); err != nil {
		var corrupt base64.CorruptInputError
		if errors.As(err, &corrupt) {
			return nil, fmt.Errorf("body_base64 or request_body_base64: %w", err)
		}
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	e := &cache.Entry{
		Key: rec.Key, BaseKey: rec.BaseKey, Upstream: rec.Upstream, Method: rec.Method, URL: rec.URL,
		RequestHeader: rec.RequestHeaders, Status: rec.Status, Header: rec.Headers,
		ContentType: rec.ContentType, ETag: rec.ETag, LastModified: rec.LastModified,
		Hits: rec.Hits, Reason: rec.Reason,
	}
	switch {
	case !cache.ValidKey(rec.Key):
		return e, fmt.Errorf("invalid key %q: want 1 to 128 characters of A-Z a-z 0-9 - _", rec.Key)
	case rec.BaseKey != "" && !cache.ValidKey(rec.BaseKey):
		return e, fmt.Errorf("invalid base_key %q", rec.BaseKey)
	case rec.Upstream == "":
		return e, errors.New("missing upstream")
	case rec.Method == "":
		return e, errors.New("missing method")
	case rec.URL == "":
		return e, errors.New("missing url")
	case rec.Status < 100 || rec.Status > 999:
		return e, fmt.Errorf("bad status %d: want 100 to 999", rec.Status)
	case rec.Created == nil:
		return e, errors.New("missing created")
	case rec.Size == nil:
		return e, errors.New("missing size")
	case rec.Body == nil:
		return e, errors.New("missing body_base64")
	case *rec.Size != int64(len(*rec.Body)):
		return e, fmt.Errorf("size %d does not match the body's %d bytes", *rec.Size, len(*rec.Body))
	case rec.Hits < 0:
		return e, fmt.Errorf("bad hits %d", rec.Hits)
	}
	if e.BaseKey == "" {
		e.BaseKey = e.Key
	}
	if e.ContentType == "" {
		e.ContentType = cache.MediaType(e.Header.Get("Content-Type"))
	}
	e.Body = *rec.Body
	if rec.RequestBody != nil && len(*rec.RequestBody) > 0 {
		e.RequestBody = *rec.RequestBody
	}
	e.Size = *rec.Size
	e.Created = *rec.Created
	if rec.RequestTime != nil {
		e.RequestTime = *rec.RequestTime
	}
	if rec.Expires != nil {
		e.Expires = *rec.Expires
	}
	if rec.LastHit != nil {
		e.LastHit = *rec.LastHit
	}
	return e, nil
}
