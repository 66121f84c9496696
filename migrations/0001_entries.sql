-- Entries hold everything about a cached response except its body, so that
-- listing, counting and sorting never read blobs. Times are Unix
-- nanoseconds; expires uses 9223372036854775807 (max int64) for "never" so
-- that never-expiring entries sort after every real time, as
-- cache.ExpiresOrdinal does. Headers are JSON objects of string arrays.
CREATE TABLE entries (
	id             INTEGER PRIMARY KEY,
	key            TEXT    NOT NULL UNIQUE,
	base_key       TEXT    NOT NULL,
	upstream       TEXT    NOT NULL,
	method         TEXT    NOT NULL,
	url            TEXT    NOT NULL,
	request_header TEXT    NOT NULL,
	status         INTEGER NOT NULL,
	header         TEXT    NOT NULL,
	size           INTEGER NOT NULL,
	content_type   TEXT    NOT NULL,
	request_time   INTEGER,          -- NULL when unknown
	created        INTEGER NOT NULL,
	expires        INTEGER NOT NULL,
	etag           TEXT    NOT NULL,
	last_modified  TEXT    NOT NULL,
	hits           INTEGER NOT NULL DEFAULT 0,
	last_hit       INTEGER,          -- NULL when never hit
	last_used      INTEGER NOT NULL, -- max(created, last_hit): the LRU order of the size cap
	reason         TEXT    NOT NULL
);

-- One body per entry, removed with it.
CREATE TABLE bodies (
	id   INTEGER PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
	body BLOB NOT NULL
);

-- Every sort order ends in key, which makes it total and lets keyset
-- pagination seek with a row-value comparison such as (size, key) > (?, ?).
CREATE INDEX entries_created ON entries (created, key);
CREATE INDEX entries_expires ON entries (expires, key);
CREATE INDEX entries_size    ON entries (size, key);
CREATE INDEX entries_url     ON entries (url, key);
CREATE INDEX entries_hits    ON entries (hits, key);

-- The common filters: one upstream (newest first in the admin UI), the
-- variants of one resource, and eviction order for the size cap.
CREATE INDEX entries_upstream  ON entries (upstream, created, key);
CREATE INDEX entries_base_key  ON entries (base_key);
CREATE INDEX entries_last_used ON entries (last_used);

-- Running totals, kept by triggers, so Count with an empty filter and the
-- size cap's check after every Put cost one row read at any table size.
CREATE TABLE totals (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	entries INTEGER NOT NULL,
	bytes   INTEGER NOT NULL
);
INSERT INTO totals (id, entries, bytes) VALUES (1, 0, 0);

CREATE TRIGGER entries_totals_insert AFTER INSERT ON entries BEGIN
	UPDATE totals SET entries = entries + 1, bytes = bytes + NEW.size WHERE id = 1;
END;
CREATE TRIGGER entries_totals_delete AFTER DELETE ON entries BEGIN
	UPDATE totals SET entries = entries - 1, bytes = bytes - OLD.size WHERE id = 1;
END;
CREATE TRIGGER entries_totals_update AFTER UPDATE OF size ON entries BEGIN
	UPDATE totals SET bytes = bytes - OLD.size + NEW.size WHERE id = 1;
END;
