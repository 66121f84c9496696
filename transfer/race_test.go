//go:build race

package transfer_test

// raceEnabled is true under the race detector, which makes byte-crunching
// tests an order of magnitude slower.
const raceEnabled = true
