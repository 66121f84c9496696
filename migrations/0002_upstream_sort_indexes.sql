-- Listing one upstream sorted by anything but created (which
-- entries_upstream already covers) picked entries_upstream and sorted every
-- row of the upstream: over 2 s at a million entries. One index per sort
-- order, led by upstream, lets such a page walk an index and stop after
-- the limit, as the unfiltered sorts do.
CREATE INDEX entries_upstream_expires ON entries (upstream, expires, key);
CREATE INDEX entries_upstream_size    ON entries (upstream, size, key);
CREATE INDEX entries_upstream_url     ON entries (upstream, url, key);
CREATE INDEX entries_upstream_hits    ON entries (upstream, hits, key);
