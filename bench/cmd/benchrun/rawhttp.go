package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// rawConn is the herd test's lean HTTP/1.1 client: one TCP connection, a
// request written as plain bytes, the answer read with a bufio.Reader and
// its body discarded. net/http's client does much more per answer (a
// goroutine per connection and one to hand the answer over, header maps,
// a body reader), in the runner's process, on the same two CPUs as the
// servers, and 200 answers arrive at once: that work would add to every
// target's fan-out. This client does little more than wrk's, so the herd
// measures the servers.
type rawConn struct {
	conn net.Conn
	br   *bufio.Reader
	host string // Host header: host:port
	req  []byte // reused request buffer
}

// dialRaw opens a connection to base ("http://host:port"); every read and
// write on it fails from timeout after it opened, or once ctx is done.
func dialRaw(ctx context.Context, base string, timeout time.Duration) (*rawConn, func(), error) {
	host, ok := strings.CutPrefix(base, "http://")
	if !ok || host == "" || strings.Contains(host, "/") {
		return nil, nil, fmt.Errorf("raw client: want http://host:port, got %q", base)
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	c := &rawConn{conn: conn, br: bufio.NewReaderSize(conn, 4096), host: host}
	return c, func() { stop(); conn.Close() }, nil
}

// get sends GET path and reads the whole answer. It returns the status
// and the body's length. A non-200 answer is not an error here.
func (c *rawConn) get(path string) (rawResponse, error) {
	c.req = appendGet(c.req[:0], path, c.host)
	if _, err := c.conn.Write(c.req); err != nil {
		return rawResponse{}, err
	}
	return readResponse(c.br)
}

// appendGet appends a plain GET request for path to b.
func appendGet(b []byte, path, host string) []byte {
	b = append(b, "GET "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	return append(b, "\r\n\r\n"...)
}

// rawResponse is what readResponse keeps of an answer.
type rawResponse struct {
	status  int
	body    int64 // bytes of body read
	chunked bool  // the body came with Transfer-Encoding: chunked
	close   bool  // the server said Connection: close
}

var errNoLength = errors.New("raw client: answer has neither Content-Length nor chunked framing")

// readResponse reads one HTTP/1.x answer to a GET from br: the status line,
// the header fields, and the body framed by Content-Length or chunked
// transfer coding (RFC 9112 6.3), which it discards. A body delimited by
// the connection's end is refused: the client keeps its connection for the
// next request, so every answer it gets must say how long it is.
func readResponse(br *bufio.Reader) (rawResponse, error) {
	var r rawResponse
	line, err := readLine(br)
	if err != nil {
		return r, fmt.Errorf("raw client: status line: %w", err)
	}
	// HTTP/1.1 200 OK
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return r, fmt.Errorf("raw client: bad status line %q", line)
	}
	if r.status, err = strconv.Atoi(string(line[9:12])); err != nil || r.status < 100 {
		return r, fmt.Errorf("raw client: bad status line %q", line)
	}
	length := int64(-1)
	for {
		line, err := readLine(br)
		if err != nil {
			return r, fmt.Errorf("raw client: header: %w", err)
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return r, fmt.Errorf("raw client: bad header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || (length >= 0 && n != length) {
				return r, fmt.Errorf("raw client: bad Content-Length %q", value)
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			// Only chunked alone: the client decodes no other coding.
			if !bytes.EqualFold(value, []byte("chunked")) {
				return r, fmt.Errorf("raw client: unsupported Transfer-Encoding %q", value)
			}
			r.chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			for _, tok := range strings.Split(string(value), ",") {
				if strings.EqualFold(strings.TrimSpace(tok), "close") {
					r.close = true
				}
			}
		}
	}
	switch {
	case r.status < 200:
		return r, fmt.Errorf("raw client: interim answer %d not expected", r.status)
	case r.status == 204 || r.status == 304:
		return r, nil // no body, whatever the fields say
	case r.chunked:
		// Transfer-Encoding overrides Content-Length (RFC 9112 6.3).
		r.body, err = readChunked(br)
		return r, err
	case length >= 0:
		n, err := br.Discard(int(length))
		r.body = int64(n)
		if err != nil {
			return r, fmt.Errorf("raw client: body: %d of %d bytes: %w", n, length, err)
		}
		return r, nil
	default:
		return r, errNoLength
	}
}

// readChunked discards a chunked body, trailer fields included, and returns
// the length of its data.
func readChunked(br *bufio.Reader) (int64, error) {
	var total int64
	for {
		line, err := readLine(br)
		if err != nil {
			return total, fmt.Errorf("raw client: chunk size: %w", err)
		}
		size, _, _ := bytes.Cut(line, []byte(";")) // chunk extensions
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return total, fmt.Errorf("raw client: bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailer fields, up to the empty line
				line, err := readLine(br)
				if err != nil {
					return total, fmt.Errorf("raw client: trailer: %w", err)
				}
				if len(line) == 0 {
					return total, nil
				}
			}
		}
		d, err := br.Discard(int(n))
		total += int64(d)
		if err != nil {
			return total, fmt.Errorf("raw client: chunk: %w", err)
		}
		if end, err := readLine(br); err != nil || len(end) != 0 {
			return total, fmt.Errorf("raw client: chunk not followed by CRLF (%q, %v)", end, err)
		}
	}
}

// readLine returns the next line without its CRLF (or bare LF). The slice
// is valid until the next read from br.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, errors.New("line longer than 4 KiB")
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}
