// Package mongo stores cache entries in MongoDB, so that several cachegate
// instances can share one cache.
//
// Entries live in one collection (default "entries"), one document each,
// keyed by the entry key. Bodies larger than a threshold (default 8 MiB,
// well under MongoDB's 16 MiB document limit) go to GridFS; readers never
// see the difference. Expiry is a BSON date; an entry that never expires
// stores a sentinel date at the end of year 9999, so it sorts after every
// real time, and reads back as the zero time.Time.
//
// The package is tested against MongoDB and against FerretDB v1.24 (see
// mongotest); where FerretDB lacks a feature the code uses a form both
// accept, and says so where it does.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/cachegate/cachegate/cache"
)

// Defaults for the DSN options.
const (
	DefaultDatabase   = "cachegate"
	DefaultCollection = "entries"
	// DefaultGridFSThreshold is the body size above which a body goes to
	// GridFS: half the 16 MiB document limit, leaving room for headers.
	DefaultGridFSThreshold = 8 << 20
	// DefaultServerSelectionTimeout bounds how long an operation waits for
	// a reachable server. The driver's own default (30s) would hold every
	// gateway request that long while MongoDB is down; a few seconds lets
	// the gateway fall back to the upstream quickly. The standard URI
	// option serverSelectionTimeoutMS overrides it.
	DefaultServerSelectionTimeout = 3 * time.Second
)

// neverDate is stored as the expiry of entries that never expire: the
// last millisecond of year 9999, after every time a Go program stores.
const neverDate = bson.DateTime(253402300799999)

// Backend is a cache.Backend on a MongoDB collection. It is safe for
// concurrent use; several Backends (in one process or many) may share a
// collection.
type Backend struct {
	client    *mongodrv.Client
	db        *mongodrv.Database
	coll      *mongodrv.Collection
	threshold int64
	closed    atomic.Bool
	// noFAMProjection is set once the server refuses a projection on
	// findAndModify (FerretDB v1 does); Put and Delete then read the whole
	// old document to learn its GridFS file.
	noFAMProjection atomic.Bool
	// writesPerCommand, when positive, splits bulk writes (see
	// ferretDBWritesPerCommand).
	writesPerCommand int
	// purged counts the expired entries DeleteExpired removed (through
	// this process), for metrics.
	purged atomic.Int64
}

var (
	_ cache.Backend      = (*Backend)(nil)
	_ cache.Pinger       = (*Backend)(nil)
	_ cache.PurgeCounter = (*Backend)(nil)
)

// Config is what Open reads from a DSN.
type Config struct {
	// URI is the MongoDB URI handed to the driver, without our options.
	URI        string
	Database   string
	Collection string
	// GridFSThreshold is the largest body stored inline, in bytes.
	GridFSThreshold int64
}

// ParseDSN splits a mongodb:// or mongodb+srv:// DSN into the driver's URI
// and our options. The database is the URI's path (default "cachegate").
// Our query options, removed before the URI reaches the driver:
//
//	collection=NAME        collection of entries (default "entries")
//	gridfs_threshold=N     bodies over N bytes go to GridFS (default 8 MiB)
//
// Every other option is the driver's (for example serverSelectionTimeoutMS,
// replicaSet, authSource).
func ParseDSN(dsn string) (Config, error) {
	c := Config{Database: DefaultDatabase, Collection: DefaultCollection, GridFSThreshold: DefaultGridFSThreshold}
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok || (scheme != "mongodb" && scheme != "mongodb+srv") {
		return c, fmt.Errorf("mongo: DSN %q: want mongodb://host/database or mongodb+srv://host/database: %w", redact(dsn), cache.ErrInvalid)
	}
	// Split by hand rather than with url.Parse: a MongoDB URI may list
	// several hosts, which is not a URL authority. The user info cannot
	// hold '/' or '?' unescaped, so the first of either ends the hosts.
	hosts, pathQuery := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		hosts, pathQuery = rest[:i], rest[i:]
	}
	path, rawQuery, _ := strings.Cut(pathQuery, "?")
	if db := strings.TrimPrefix(path, "/"); db != "" {
		name, err := url.PathUnescape(db)
		if err != nil || strings.ContainsAny(name, `/\. "$`) {
			return c, fmt.Errorf("mongo: DSN: bad database name %q: %w", db, cache.ErrInvalid)
		}
		c.Database = name
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return c, fmt.Errorf("mongo: DSN: bad query: %v: %w", err, cache.ErrInvalid)
	}
	if v := q.Get("collection"); v != "" {
		if strings.ContainsAny(v, "$\x00") {
			return c, fmt.Errorf("mongo: DSN: bad collection name %q: %w", v, cache.ErrInvalid)
		}
		c.Collection = v
	}
	if v := q.Get("gridfs_threshold"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 15<<20 {
			return c, fmt.Errorf("mongo: DSN: gridfs_threshold=%q: want a byte count up to 15728640 (15 MiB): %w", v, cache.ErrInvalid)
		}
		c.GridFSThreshold = n
	}
	// Remove only our keys, keeping the driver's options byte for byte
	// (url.Values.Encode would reorder and re-escape them).
	var kept []string
	for _, kv := range strings.Split(rawQuery, "&") {
		k, _, _ := strings.Cut(kv, "=")
		if kv == "" || k == "collection" || k == "gridfs_threshold" {
			continue
		}
		kept = append(kept, kv)
	}
	c.URI = scheme + "://" + hosts + "/" + strings.TrimPrefix(path, "/")
	if len(kept) > 0 {
		c.URI += "?" + strings.Join(kept, "&")
	}
	return c, nil
}

// redact hides the password of a DSN for error messages.
func redact(dsn string) string {
	if at := strings.LastIndex(dsn, "@"); at >= 0 {
		if s := strings.Index(dsn, "://"); s >= 0 && s < at {
			return dsn[:s+3] + "…@" + dsn[at+1:]
		}
	}
	return dsn
}

// Open connects to the MongoDB named by dsn (see ParseDSN) and makes sure
// the collection's indexes exist. It fails if the server cannot be reached
// within the server selection timeout.
func Open(ctx context.Context, dsn string) (*Backend, error) {
	c, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	opts := options.Client().
		SetServerSelectionTimeout(DefaultServerSelectionTimeout).
		SetAppName("cachegate").
		ApplyURI(c.URI) // after the default, so the URI's options win
	client, err := mongodrv.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("mongo: connect %s: %w", redact(c.URI), err)
	}
	db := client.Database(c.Database)
	b := &Backend{
		client:    client,
		db:        db,
		coll:      db.Collection(c.Collection),
		threshold: c.GridFSThreshold,
	}
	if err := b.createIndexes(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	b.detectFerretDB(ctx)
	return b, nil
}

// createIndexes creates an index per sort order (each with the key as the
// tie-break, matching the keyset pagination) and per exact-match filter.
// Creating an existing index is a no-op, so every instance may do it.
func (b *Backend) createIndexes(ctx context.Context) error {
	indexes := map[string]bson.D{} // by name
	for _, f := range cache.SortFields {
		field := sortField(f)
		indexes[field+"_id"] = bson.D{{Key: field, Value: 1}, {Key: "_id", Value: 1}}
	}
	for _, field := range []string{"upstream", "base"} {
		indexes[field] = bson.D{{Key: field, Value: 1}}
	}
	// Create only the missing ones: FerretDB v1.24 drops the connection
	// (a panic it recovers from) when asked to create indexes that all
	// exist, which is what every Open after the first would do.
	existing, err := b.coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		return fmt.Errorf("mongo: list indexes on %s: %w", b.coll.Name(), err)
	}
	for _, spec := range existing {
		delete(indexes, spec.Name)
	}
	if len(indexes) == 0 {
		return nil
	}
	var models []mongodrv.IndexModel
	for name, keys := range indexes {
		models = append(models, mongodrv.IndexModel{Keys: keys, Options: options.Index().SetName(name)})
	}
	if _, err := b.coll.Indexes().CreateMany(ctx, models); err != nil {
		return fmt.Errorf("mongo: create indexes on %s: %w", b.coll.Name(), err)
	}
	return nil
}

// sortField maps a sort field to its document field.
func sortField(f cache.SortField) string {
	switch f {
	case cache.SortExpires:
		return "expires"
	case cache.SortSize:
		return "size"
	case cache.SortURL:
		return "url"
	case cache.SortHits:
		return "hits"
	default:
		return "created"
	}
}

// bucket returns a GridFS bucket named after the collection. It is made
// per call because the driver's bucket keeps unsynchronised state (a
// "first write done" flag and a read buffer) that concurrent uploads
// would race on; making one costs no round trip.
func (b *Backend) bucket() *mongodrv.GridFSBucket {
	return b.db.GridFSBucket(options.GridFSBucket().SetName(b.coll.Name() + "_bodies"))
}

// check returns ErrClosed after Close.
func (b *Backend) check() error {
	if b.closed.Load() {
		return cache.ErrClosed
	}
	return nil
}

// wrap adds the package prefix to err and maps the driver's "client
// disconnected" (a call racing Close) to cache.ErrClosed.
func wrap(op string, err error) error {
	if errors.Is(err, mongodrv.ErrClientDisconnected) {
		err = cache.ErrClosed
	}
	return fmt.Errorf("mongo: %s: %w", op, err)
}

// Ping checks that a server answers, within the server selection timeout.
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.check(); err != nil {
		return wrap("ping", err)
	}
	if err := b.client.Ping(ctx, readpref.Primary()); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// Close disconnects from MongoDB. Later calls return cache.ErrClosed.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return wrap("close", cache.ErrClosed)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.client.Disconnect(ctx); err != nil {
		return wrap("close", err)
	}
	return nil
}
