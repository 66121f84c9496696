//go:build race

package e2e_test

// bulkScale divides the size of bulk tests under the race detector, which
// makes the pure-Go SQLite about twenty times slower per write.
const bulkScale = 10
