package tiered

import (
	"os"

	"golang.org/x/sys/unix"
)

// bodyFile returns an unnamed file in dir holding body, or nil when one
// cannot be made (the file system has no O_TMPFILE, the disk is full):
// the body is then served from memory.
func bodyFile(dir string, body []byte) *os.File {
	fd, err := unix.Open(dir, unix.O_RDWR|unix.O_TMPFILE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), "cachegate-hot-body")
	if n, err := f.WriteAt(body, 0); err != nil || n != len(body) {
		f.Close()
		return nil
	}
	return f
}
