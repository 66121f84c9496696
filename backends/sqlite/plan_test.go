package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
	"github.com/jmoiron/sqlx"
)

// TestListUsesIndexes checks with EXPLAIN QUERY PLAN that every sort, with
// and without a cursor, and the common filters are answered by walking an
// index: a "USE TEMP B-TREE FOR ORDER BY" would mean sorting the whole
// table on every page, which is what makes a million-row listing slow.
func TestListUsesIndexes(t *testing.T) {
	b, err := Open("sqlite://" + filepath.Join(t.TempDir(), "plan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// A few rows and ANALYZE-free defaults are enough: the planner picks
	// an index for ORDER BY ... LIMIT whenever one matches.
	e := cachetest.NewEntry("k")
	cachetest.MustPut(t, b, e)
	type plan struct {
		name string
		q    cache.Query
	}
	var plans []plan
	for _, f := range cache.SortFields {
		for _, desc := range []bool{false, true} {
			s := cache.Sort{Field: f, Desc: desc}
			plans = append(plans,
				plan{string(f) + " first page", cache.Query{Sort: s}},
				plan{string(f) + " with cursor", cache.Query{Sort: s, Cursor: cache.CursorAfter(e, s)}},
				plan{string(f) + " with body", cache.Query{Sort: s, WithBody: true}})
		}
	}
	for _, f := range cache.SortFields {
		for _, desc := range []bool{false, true} {
			s := cache.Sort{Field: f, Desc: desc}
			up := cache.Filter{Upstream: "demo"}
			plans = append(plans,
				plan{"upstream by " + string(f), cache.Query{Filter: up, Sort: s}},
				plan{"upstream by " + string(f) + " with cursor", cache.Query{Filter: up, Sort: s, Cursor: cache.CursorAfter(e, s)}})
		}
	}
	plans = append(plans,
		// The default listing: once a partial index on live rows made the
		// planner scan it and sort a million rows by created.
		plan{"newest first", cache.Query{}},
		plan{"upstream newest first", cache.Query{Filter: cache.Filter{Upstream: "demo"}}},
		plan{"upstream by size above a minimum", cache.Query{Filter: cache.Filter{Upstream: "demo", MinSize: 512}, Sort: cache.Sort{Field: cache.SortSize, Desc: true}}},
		plan{"expired by expiry", cache.Query{Filter: cache.Filter{Freshness: cache.Expired}, Sort: cache.Sort{Field: cache.SortExpires}}},
	)
	for _, p := range plans {
		query, args, _, err := listQuery(p.q)
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		all := queryPlan(t, b, query, args...)
		t.Logf("%s: %s", p.name, all)
		if strings.Contains(all, "TEMP B-TREE") || !strings.Contains(all, "INDEX") {
			t.Errorf("%s: plan %q does not walk an index in order", p.name, all)
		}
		if strings.Contains(p.name, "cursor") && !strings.Contains(all, "SEARCH e USING INDEX") {
			t.Errorf("%s: plan %q does not seek with the cursor", p.name, all)
		}
	}
}

// TestCountByReasonUsesIndex checks that counting one upstream's entries,
// all of them or by reason prefix (the Upstreams page, per rule), reads
// the (upstream, reason, deleted, size) index alone.
func TestCountByReasonUsesIndex(t *testing.T) {
	b, err := Open("sqlite://" + filepath.Join(t.TempDir(), "plan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cachetest.MustPut(t, b, cachetest.NewEntry("k"))
	for _, f := range []cache.Filter{{Upstream: "demo", Reason: `urls_expire_after pattern "/x*" `}, {Upstream: "demo"}} {
		where, args := whereClause(f)
		all := queryPlan(t, b, `SELECT COUNT(*), COALESCE(SUM(e.size), 0) FROM entries e WHERE e.deleted = 0 AND `+strings.Join(where, " AND "), args...)
		if !strings.Contains(all, "COVERING INDEX entries_upstream_reason") {
			t.Errorf("%+v: plan %q does not read the (upstream, reason) index alone", f, all)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{{"ab", "ac", true}, {"a ", "a!", true}, {"a\xff", "b", true}, {"\xff\xff", "", false}, {"é", "\xc3\xaa", true}} {
		if got, ok := prefixEnd(c.in); got != c.want || ok != c.ok {
			t.Errorf("prefixEnd(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// TestWritesUseIndexes checks the plans of the statements behind deletes,
// the sweep and eviction: each must reach its rows through an index, as a
// scan of the table would cost seconds at a million entries.
func TestWritesUseIndexes(t *testing.T) {
	// With a cap, so that the index of eviction order exists.
	b, err := Open("sqlite://" + filepath.Join(t.TempDir(), "plan.db") + "?max_size=1MiB")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, c := range []struct {
		name, query string
		args        []any
		want        []string // in the plan, in order
	}{
		{"expired ids", selectIDs("e.expires <= ?"), []any{1}, []string{"COVERING INDEX entries_expires"}},
		{"mark ids", markIDs("e.expires <= ?"), []any{"[1, 2]", 1}, []string{"INTEGER PRIMARY KEY", "json_each"}},
		{"sweep", sweepRows, []any{sweepBatchRows}, []string{"INTEGER PRIMARY KEY", "COVERING INDEX entries_deleted"}},
		{"mark key", markByKey, []any{"k"}, []string{"INDEX sqlite_autoindex_entries_1 (key=?)"}},
		{"eviction victims", evictVictims, []any{0}, []string{"SCAN entries USING INDEX entries_lru"}},
	} {
		all := queryPlan(t, b, c.query, c.args...)
		t.Logf("%s: %s", c.name, all)
		rest := all
		for _, w := range c.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("%s: plan %q lacks %q", c.name, all, w)
				break
			}
			rest = rest[i+len(w):]
		}
		if strings.Contains(all, "TEMP B-TREE") {
			t.Errorf("%s: plan %q sorts", c.name, all)
		}
	}
}

// queryPlan returns the steps of query's plan, joined with "; ".
func queryPlan(tb testing.TB, b *Backend, query string, args ...any) string {
	tb.Helper()
	rows, err := b.reader.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var steps []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			tb.Fatal(err)
		}
		steps = append(steps, detail)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return strings.Join(steps, "; ")
}

// The writer gets the large page cache and every other connection the
// small one, with the shared pragmas: the caches are most of the
// gateway's memory at a million entries.
func TestPageCachePerConnection(t *testing.T) {
	b, err := Open("sqlite://" + filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	want := map[string]string{"writer": writerCacheSize, "reader": readerCacheSize, "checkpointer": readerCacheSize}
	for name, db := range map[string]*sqlx.DB{"writer": b.writer, "reader": b.reader, "checkpointer": b.checkpointer} {
		var size, mode string
		if err := db.QueryRow("PRAGMA cache_size").Scan(&size); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if size != want[name] || mode != "wal" {
			t.Errorf("%s: cache_size %s, journal_mode %s; want %s, wal", name, size, mode, want[name])
		}
	}
}
