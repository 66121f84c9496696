// Package migrations holds the SQLite schema as numbered SQL files,
// embedded so the binary carries them. backends/sqlite applies them in
// name order, each once, and records them in its migrations table: add a
// new NNNN_name.sql file for every change and never edit one that has
// shipped.
package migrations

import "embed"

// FS holds the migration files, named NNNN_name.sql.
//
//go:embed *.sql
var FS embed.FS
