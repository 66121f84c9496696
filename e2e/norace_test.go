//go:build !race

package e2e_test

// bulkScale divides the size of bulk tests; see race_test.go.
const bulkScale = 1
