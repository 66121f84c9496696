//go:build race

package mongotest

// raceEnabled reports a -race build, in which FerretDB runs as a child
// process (see ferretdb/main.go).
const raceEnabled = true
