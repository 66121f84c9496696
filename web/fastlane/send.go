package fastlane

import (
	"net"
	"syscall"
	"time"

	"github.com/cachegate/cachegate/gateway"
)

// directWrite is the body size from which the head and the body go out
// together with writev instead of the body being copied after the head.
const directWrite = 4 << 10

// send writes a to the connection: its head with the request's ID where
// the head says, then its body, from its file with sendfile when it has
// one and the connection is a socket of the kernel's.
//
// The server's WriteTimeout bounds the answer from the end of its
// request's head, as net/http's does; Options.ChunkWriteTimeout bounds
// each gateway.HitChunk of a large body, as the gateway bounds the writes
// of the answers it writes itself.
func (c *conn) send(a *gateway.Answer) error {
	if d := c.lane.srv.WriteTimeout; d > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(d))
	}
	head := append(c.out[:0], a.Head[:a.IDAt]...)
	if a.RequestID != "" {
		head = append(head, gateway.RequestIDHeader+": "...)
		head = append(head, a.RequestID...)
		head = append(head, "\r\n"...)
	}
	head = append(head, a.Head[a.IDAt:]...)
	body := a.Body
	chunk := c.lane.opt.ChunkWriteTimeout
	large := chunk > 0 && len(body) > gateway.HitChunk
	if large {
		defer c.restoreWriteDeadline()
	}
	if a.File != nil && canSendFile && len(body) > 0 {
		if large {
			c.Conn.SetWriteDeadline(time.Now().Add(chunk * time.Duration(1+len(body)/gateway.HitChunk)))
		}
		if sent, err := c.sendFile(head, a.File, int64(len(body))); sent {
			c.out = head[:0]
			return err
		}
	}
	if len(body) < directWrite {
		head = append(head, body...)
		c.out = head[:0]
		_, err := c.Conn.Write(head)
		return err
	}
	c.out = head[:0]
	if !large {
		bufs := net.Buffers{head, body}
		_, err := bufs.WriteTo(c.Conn)
		return err
	}
	for first := true; len(body) > 0; first = false {
		n := min(len(body), gateway.HitChunk)
		c.Conn.SetWriteDeadline(time.Now().Add(chunk))
		bufs := net.Buffers{body[:n]}
		if first {
			bufs = net.Buffers{head, body[:n]}
		}
		if _, err := bufs.WriteTo(c.Conn); err != nil {
			return err
		}
		body = body[n:]
	}
	return nil
}

// restoreWriteDeadline puts back the deadline the server's WriteTimeout
// set, or none, after the per-chunk deadlines of a large answer.
func (c *conn) restoreWriteDeadline() {
	var t time.Time
	if d := c.lane.srv.WriteTimeout; d > 0 {
		t = time.Now().Add(d)
	}
	c.Conn.SetWriteDeadline(t)
}

// sendFile sends head and the body from f with sendfile. sent is false,
// with nothing written, when it cannot: the connection is not a socket
// of the kernel's (a TLS connection, a pipe), or the file has been closed
// (its entry left memory) and the body is to be sent from memory.
func (c *conn) sendFile(head []byte, f syscall.Conn, size int64) (sent bool, err error) {
	if _, ok := c.Conn.(syscall.Conn); !ok {
		return false, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false, nil
	}
	// The file is held for the whole answer: closed meanwhile, its
	// descriptor stays open until the answer is out. Control holds a
	// reference, not Read's lock: that lock would let one answer at a
	// time send a body that many connections are asking for (sendfile at
	// an explicit offset leaves the file's position alone).
	_ = rc.Control(func(fd uintptr) { // fails only on a closed file: sent stays false
		sent = true
		_, err = sendFile(c.Conn, head, int(fd), 0, size)
	})
	return sent, err
}
