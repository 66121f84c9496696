package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// Get returns the entry under key with its body. A Get does not write:
// hit counts arrive later through RecordHits, so a cache hit never waits
// for the write lock.
func (b *Backend) Get(ctx context.Context, key string) (*cache.Entry, bool, error) {
	if err := b.check(fmt.Sprintf("get %q", key)); err != nil {
		return nil, false, err
	}
	e, err := scanEntry(b.getStmt.QueryRowContext(ctx, key), true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, b.fail(fmt.Sprintf("get %q", key), err)
	}
	return e, true, nil
}

// Stamp returns the stamp of the entry stored under key (cache.Stamper):
// one lookup in the key's index and a read of its row, without the body
// or the fields that Get decodes.
func (b *Backend) Stamp(ctx context.Context, key string) (cache.Stamp, bool, error) {
	if err := b.check(fmt.Sprintf("stamp %q", key)); err != nil {
		return cache.Stamp{}, false, err
	}
	var created, expires, size int64
	err := b.stampStmt.QueryRowContext(ctx, key).Scan(&created, &expires, &size)
	if errors.Is(err, sql.ErrNoRows) {
		return cache.Stamp{}, false, nil
	}
	if err != nil {
		return cache.Stamp{}, false, b.fail(fmt.Sprintf("stamp %q", key), err)
	}
	s := cache.Stamp{Created: fromNanos(created), Size: size}
	if expires != cache.ExpiresOrdinal(time.Time{}) {
		s.Expires = time.Unix(0, expires)
	}
	return s, true, nil
}

// List returns one page of entries, seeking with the cursor through the
// index of the sort column so a deep page costs what the first one does.
func (b *Backend) List(ctx context.Context, q cache.Query) (cache.Page, error) {
	if err := b.check("list"); err != nil {
		return cache.Page{}, err
	}
	query, args, s, err := listQuery(q)
	if err != nil {
		return cache.Page{}, fmt.Errorf("sqlite: list: %w", err)
	}
	rows, err := b.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return cache.Page{}, b.fail("list", err)
	}
	defer rows.Close()
	var page cache.Page
	for rows.Next() {
		e, err := scanEntry(rows, q.WithBody)
		if err != nil {
			return cache.Page{}, b.fail("list", err)
		}
		page.Entries = append(page.Entries, e)
	}
	if err := rows.Err(); err != nil {
		return cache.Page{}, b.fail("list", err)
	}
	// The query asks for one row more than a page: if it came, there is a
	// next page, and the last page never ends with an empty one.
	if limit := q.PageLimit(); len(page.Entries) > limit {
		page.Entries = page.Entries[:limit]
		page.Next = cache.CursorAfter(page.Entries[limit-1], s)
	}
	return page, nil
}

// listQuery builds the SQL of a List call and returns it with its
// arguments and the normalized sort.
func listQuery(q cache.Query) (string, []any, cache.Sort, error) {
	s, err := q.Sort.Normalize()
	if err != nil {
		return "", nil, s, err
	}
	where, args := whereClause(q.Filter)
	where = append([]string{"e.deleted = 0"}, where...)
	col := sortColumns[s.Field]
	dir, cmp := "ASC", ">"
	if s.Desc {
		dir, cmp = "DESC", "<"
	}
	if q.Cursor != "" {
		c, err := cache.ParseCursor(q.Cursor, s)
		if err != nil {
			return "", nil, s, err
		}
		where = append(where, fmt.Sprintf("(e.%s, e.key) %s (?, ?)", col, cmp))
		if s.Field == cache.SortURL {
			args = append(args, c.S, c.Key)
		} else {
			args = append(args, c.N, c.Key)
		}
	}
	var sb strings.Builder
	sb.WriteString("SELECT " + entryColumns)
	if q.WithBody {
		sb.WriteString(", b.body, b.request_body FROM entries e JOIN bodies b ON b.id = e.id")
	} else {
		sb.WriteString(" FROM entries e")
	}
	sb.WriteString(" WHERE " + strings.Join(where, " AND "))
	fmt.Fprintf(&sb, " ORDER BY e.%s %s, e.key %s LIMIT %d", col, dir, dir, q.PageLimit()+1)
	return sb.String(), args, s, nil
}

// sortColumns maps each sort field to its indexed column.
var sortColumns = map[cache.SortField]string{
	cache.SortCreated: "created",
	cache.SortExpires: "expires",
	cache.SortSize:    "size",
	cache.SortURL:     "url",
	cache.SortHits:    "hits",
}

// Count returns the number and total size of the matching entries; with an
// empty filter it reads the running totals instead of scanning.
func (b *Backend) Count(ctx context.Context, f cache.Filter) (cache.Totals, error) {
	if err := b.check("count"); err != nil {
		return cache.Totals{}, err
	}
	var t cache.Totals
	where, args := whereClause(f)
	var err error
	if len(where) == 0 {
		err = b.reader.QueryRowxContext(ctx, `SELECT entries, bytes FROM totals WHERE id = 1`).Scan(&t.Entries, &t.Bytes)
	} else {
		err = b.reader.QueryRowxContext(ctx, `SELECT COUNT(*), COALESCE(SUM(e.size), 0) FROM entries e WHERE e.deleted = 0 AND `+
			strings.Join(where, " AND "), args...).Scan(&t.Entries, &t.Bytes)
	}
	if err != nil {
		return cache.Totals{}, b.fail("count", err)
	}
	return t, nil
}
