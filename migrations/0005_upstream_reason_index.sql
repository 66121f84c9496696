-- The Upstreams page counts each upstream's entries per expiry rule, by
-- the start of their reason (Filter.Reason). Without an index that is a
-- scan of the upstream's rows per rule: 0.8 s each at a million entries.
-- Over live rows only, with size, so that counting and summing read the
-- index alone.
CREATE INDEX entries_upstream_reason ON entries (upstream, reason, size) WHERE deleted = 0;
