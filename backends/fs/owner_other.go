//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package fs

import "os"

// lockOwner creates the lock file of owner; without flock nothing tells
// whether its process still runs.
func lockOwner(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
}

// ownerGone cannot tell without flock: the sweep falls back to the age
// of the files.
func ownerGone(string) bool { return false }
