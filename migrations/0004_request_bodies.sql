-- The body of the request behind a non-GET entry (a cached POST, say), so
-- that an admin revalidation sends the same request again instead of an
-- empty one. It lives beside the response body, which only Get and
-- listings asking for bodies read; NULL when the request had none.
ALTER TABLE bodies ADD COLUMN request_body BLOB;
