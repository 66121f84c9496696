//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package fs

import (
	"errors"
	"os"
	"syscall"
)

// lockOwner creates the lock file at path and holds an exclusive flock on
// it until the file is closed, which the kernel does when the process
// ends, however it ends. The file is locked before it is renamed into
// place, so that no other process ever finds it unlocked while its owner
// runs.
func lockOwner(path string) (*os.File, error) {
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	if err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	return f, nil
}

// ownerGone reports whether the process that held the lock file at path
// has ended: the file is missing, or nobody holds its lock. A lock held by
// this process through another file (its own owner) counts as held.
func ownerGone(path string) bool {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false // held: the owner runs
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return true
}
