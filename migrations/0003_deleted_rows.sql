-- Removing a row from entries removes it from every index of the table
-- too, a dozen B-trees, most of them keyed by a value and the 32-character
-- key; at a million entries, purging a tenth of them took about a minute,
-- however it was batched. A delete now only marks its rows deleted, which
-- rewrites the row in place and adds it to a small index. Every read
-- skips deleted rows, and a sweeper in the background removes them (and,
-- by the cascade, their bodies) a few hundred at a time.
ALTER TABLE entries ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;

-- The sweeper's work, in rowid order.
CREATE INDEX entries_deleted ON entries (id) WHERE deleted = 1;

-- The eviction order, least recently used first, serves only a cache with
-- a size cap, yet every store, hit and delete paid for it: Open creates it
-- (as entries_lru, over live rows only) when the cache has a cap.
DROP INDEX entries_last_used;

-- The totals count live entries: marking a row deleted, or storing over a
-- deleted row, changes them; removing a deleted row does not. Rows are
-- removed only once deleted (and by Clear, which resets the totals), so
-- no delete trigger remains: one firing per removed row made removal
-- about a third slower.
DROP TRIGGER entries_totals_delete;
DROP TRIGGER entries_totals_update;
CREATE TRIGGER entries_totals_update AFTER UPDATE OF size, deleted ON entries BEGIN
	UPDATE totals SET
		entries = entries + OLD.deleted - NEW.deleted,
		bytes = bytes + (NEW.deleted = 0) * NEW.size - (OLD.deleted = 0) * OLD.size
	WHERE id = 1;
END;
