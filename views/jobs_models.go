package views

import "time"

// JobsView is the Jobs page: every job the server keeps, newest first.
type JobsView struct {
	Jobs []JobRow
	Now  time.Time
	// Keep says how long a finished job stays listed ("1h0m0s"), for the
	// empty state and the page's description.
	Keep string
	// Notice is a message about what the user just did ("" for none).
	Notice string
}

// JobDetailView is one job's page.
type JobDetailView struct {
	Job JobRow
	Now time.Time
	// Started says the user just started the job (the page that started
	// it sent them here): the page says so and watches it, so a toast
	// follows the job on whichever page they open next.
	Started bool
	// Notice is a message about what the user just did ("" for none),
	// e.g. after a cancel.
	Notice string
}

// JobRow is one job as the Jobs pages show it, already worked out by the
// handler: the numbers, the outcome and where its result is.
type JobRow struct {
	ID                           string
	Kind                         string // revalidate, copy, export, import, delete...
	Target                       string // what it works on, e.g. a backend or "a → b"
	State                        string // running, done, failed, cancelled
	Done, Total, Failed, Skipped int64
	// Percent is how far along the job is, in [0, 100]; -1 while the
	// total is not known.
	Percent float64
	// Rate is entries per second ("12.5/s"), "" when not measurable yet;
	// ETA the time left ("3 min 20 s"), "" when unknown or ended.
	Rate, ETA string
	Started   time.Time
	Finished  time.Time // zero while running
	// Error says why a failed job stopped.
	Error string
	// Outcomes counts the job's result per outcome (not modified, updated,
	// copied...), in the result's order.
	Outcomes []Outcome
	// Issues are the failures and skips the job kept, at most as many as
	// the page shows; MoreIssues counts those left out (of what the job
	// counted, kept or not).
	Issues     []JobIssue
	MoreIssues int64
	// ResultURL links to what the job produced or worked on ("" for
	// none), with ResultLabel as the link's text.
	ResultURL, ResultLabel string
}

// Running reports whether the job has not ended yet.
func (j JobRow) Running() bool { return j.State == "running" }

// Outcome is one count of a job's result.
type Outcome struct {
	Name  string // "not modified", "updated", "bytes"
	Value string // formatted: "1,234", "3.2 MiB"
	// Kind colours it like a Badge: "ok", "warn", "bad", "info" or "".
	Kind string
}

// JobIssue is one entry a job failed on or skipped.
type JobIssue struct {
	// Key is the entry's key ("" when unknown, e.g. an import line that
	// did not parse); EntryURL links to the entry when it has one.
	Key, EntryURL string
	Line          int64 // input line, for imports
	Skipped       bool
	Reason        string
}
