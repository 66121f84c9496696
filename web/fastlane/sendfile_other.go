//go:build !linux

package fastlane

import (
	"errors"
	"net"
)

const canSendFile = false

func sendFile(c net.Conn, head []byte, fd int, off, size int64) (int64, error) {
	return 0, errors.New("fastlane: sendfile: not on this system")
}
