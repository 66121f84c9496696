package fastlane

import (
	"errors"
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// canSendFile: sendFile works here.
const canSendFile = true

// sendFile sends head, then size bytes of the file fd from off, to the
// connection: the head with MSG_MORE, so that it leaves in one segment
// with the start of the body (two segments would wake the client twice),
// the body with sendfile at explicit offsets (the file is shared by
// concurrent answers). It waits for the socket as a write would. n counts
// the body bytes sent.
func sendFile(c net.Conn, head []byte, fd int, off, size int64) (n int64, err error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, errors.New("fastlane: sendfile: not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	start, end := off, off+size
	var serr error
	werr := rc.Write(func(s uintptr) bool {
		for len(head) > 0 {
			n, err := unix.SendmsgN(int(s), head, nil, nil, unix.MSG_MORE)
			switch {
			case err == unix.EAGAIN:
				return false
			case err == unix.EINTR:
				continue
			case err != nil:
				serr = err
				return true
			}
			head = head[n:]
		}
		for off < end {
			n, err := unix.Sendfile(int(s), fd, &off, int(min(end-off, 1<<30)))
			switch {
			case err == unix.EAGAIN:
				return false // wait until the socket takes more
			case err == unix.EINTR:
				continue
			case err != nil:
				serr = err
				return true
			case n == 0:
				serr = io.ErrUnexpectedEOF // the file is shorter than said
				return true
			}
		}
		return true
	})
	if serr == nil {
		serr = werr
	}
	return off - start, serr
}
