// Package transfer moves cache entries out of a backend, into one, and
// between two: Export writes a backend's entries as NDJSON or HAR 1.2,
// Import reads NDJSON back, and Copy goes from one backend to another. The
// cachegate export, import and copy commands and the admin API's bulk jobs
// call these functions.
//
// All three stream: they page through Backend.List and hold at most one
// page of entries, whose bodies together stay under a few MiB (a page's
// metadata is listed first and the bodies are then fetched in chunks
// bounded by bytes, so a page of 64 MiB responses does not cost 6 GiB).
// Memory does not grow with the size of the cache. They check the context
// between entries, so cancelling it stops a job promptly; what was
// written until then stays written.
//
// Entries are visited in URL order (ties by key). Unlike creation time, a
// URL does not change when an entry is refreshed, so an export taken while
// the gateway keeps serving neither skips nor repeats an entry that is
// revalidated during it. Entries stored after the export started may or
// may not be included.
//
// # The NDJSON export format, version 1
//
// One JSON object per line, each line ending in "\n" (readers also accept
// "\r\n" and skip blank lines). The file is UTF-8.
//
// The first line is a header:
//
//		{"format":"cachegate-export","version":1,"exported_at":"2024-05-01T12:00:00.123456789Z","filter":{"upstream":"github"}}
//
//	  - format: always "cachegate-export".
//	  - version: 1. Readers refuse versions they do not know. Fields may be
//	    added within a version (readers ignore fields they do not know); a
//	    change that an old reader would misread bumps the version.
//	  - exported_at: when the export started (RFC 3339, UTC).
//	  - filter: the filter the entries were selected with, for the record
//	    (empty object when everything was exported). Its fields are those of
//	    the -filter flags: keys, base_key, upstream, url, method, status,
//	    content_type, freshness ("fresh" or "expired", judged at "now"),
//	    min_size, max_size, created_after, created_before, expires_after,
//	    expires_before; unset fields are left out.
//
// Every following line is one entry:
//
//	{"key":"3q2-7w","base_key":"3q2-7w","upstream":"github","method":"GET",
//	 "url":"https://api.github.com/repos/golang/go?access_token=REDACTED",
//	 "request_headers":{"Accept":["application/json"]},"status":200,
//	 "headers":{"Content-Type":["application/json; charset=utf-8"],"Etag":["\"abc\""]},
//	 "content_type":"application/json","size":2,
//	 "request_time":"2024-05-01T11:59:59.9Z","created":"2024-05-01T12:00:00Z",
//	 "expires":"2024-05-01T13:00:00Z","etag":"\"abc\"","last_modified":"",
//	 "hits":3,"last_hit":"2024-05-01T12:30:00Z","reason":"expire_after 1h",
//	 "body_base64":"e30="}
//
// (shown wrapped; in the file it is one line). The fields:
//
//   - key (required): the entry's key, 1 to 128 characters of [A-Za-z0-9_-].
//   - base_key: the key shared by the variants of one resource (Vary);
//     defaults to key.
//   - upstream, method, url (required): the upstream name, the request
//     method and the normalized upstream URL.
//   - request_headers, headers: request headers that took part in the key,
//     and the stored response headers; objects of name to a list of
//     values, or null.
//   - status (required): the response status, 100 to 999.
//   - content_type: the media type without parameters; when empty, import
//     takes it from the Content-Type response header.
//   - size (required): the body's length in bytes; import checks it
//     against the decoded body.
//   - request_time, created (required), last_hit: RFC 3339 times with
//     nanoseconds; request_time and last_hit are null when unknown.
//   - expires: when the entry stops being fresh; null means never.
//   - etag, last_modified: the validators used to revalidate.
//   - hits: how many requests the entry answered.
//   - reason: why the entry got its expiry, in words.
//   - request_body_base64 (optional): the body of the request behind a
//     non-GET entry (a cached POST), redacted as stored, in standard
//     base64; left out when the request had none. Files written before it
//     existed import as entries without one.
//   - body_base64 (required): the body in standard base64 with padding
//     (RFC 4648 section 4); "" for an empty body. It is always the last
//     field, so the metadata can be read without decoding the body.
//
// Redaction is kept as stored: the gateway stores URLs, request headers
// and request bodies already redacted (ignored parameters read REDACTED,
// credentials are never stored), and an export adds nothing and removes
// nothing.
//
// Import puts each entry with one Backend.Put, replacing any entry with the
// same key, so a damaged line never leaves a half-written entry. A line
// that is not valid JSON, lacks a required field, carries an invalid key,
// bad base64 or a size that does not match its body is reported with its
// line number (the header is line 1); ImportOptions.OnError chooses
// between skipping it and stopping there.
//
// # HAR
//
// Export can also write HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/),
// which browsers' developer tools and HTTP mocking tools load. Each entry
// becomes a HAR entry whose response content carries the body as text when
// it is UTF-8 of a textual media type, and base64 ("encoding": "base64")
// otherwise; a stored request body goes in the request's postData the same
// way. HAR has no place for some of cachegate's fields; they go in
// an "_cachegate" object on each entry (key, upstream, expires, reason), as
// the spec allows for custom fields. HAR is an export format only: import
// reads NDJSON.
package transfer
