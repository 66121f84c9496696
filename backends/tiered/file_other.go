//go:build !linux

package tiered

import "os"

// bodyFile keeps bodies in memory only off Linux.
func bodyFile(dir string, body []byte) *os.File { return nil }
