package transfer

import "testing"

// SetChunkBytes lowers the byte bound of a body-fetching chunk for the
// duration of a test, so tests exercise entries larger than a chunk
// without moving megabytes through the race detector.
func SetChunkBytes(tb testing.TB, n int64) {
	old := chunkBytes
	chunkBytes = n
	tb.Cleanup(func() { chunkBytes = old })
}
