package mongo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/cachegate/cachegate/cache"
)

// withoutBody leaves inline bodies and request bodies out of listings.
var withoutBody = bson.D{{Key: "body", Value: 0}, {Key: "req_body", Value: 0}}

// getRetries bounds how often Get re-reads an entry whose GridFS body was
// replaced while it was being read. It waits a little longer before each
// try (1 ms, 2 ms, ..., 190 ms in all), so that a key rewritten by several
// writers at once settles: with 5 immediate tries, the shared suite's
// concurrent test on FerretDB under -race sometimes saw every read lose.
const getRetries = 20

// Get returns the entry under key with its body. A key that is not valid
// (cache.ValidKey) is an error wrapping cache.ErrInvalid.
func (b *Backend) Get(ctx context.Context, key string) (*cache.Entry, bool, error) {
	if err := b.check(); err != nil {
		return nil, false, wrap(fmt.Sprintf("get %q", key), err)
	}
	if !cache.ValidKey(key) {
		return nil, false, fmt.Errorf("mongo: get %q: bad key: %w", key, cache.ErrInvalid)
	}
	for attempt := range getRetries {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * time.Millisecond):
			case <-ctx.Done():
				return nil, false, wrap(fmt.Sprintf("get %q", key), ctx.Err())
			}
		}
		var d document
		err := b.coll.FindOne(ctx, bson.D{{Key: "_id", Value: key}}).Decode(&d)
		if errors.Is(err, mongodrv.ErrNoDocuments) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, wrap(fmt.Sprintf("get %q", key), err)
		}
		e, err := b.withBody(ctx, &d)
		if errors.Is(err, errBodyGone) {
			// A Put or Delete replaced the entry between our two reads
			// and removed its old body: read the entry again.
			continue
		}
		if err != nil {
			return nil, false, wrap(fmt.Sprintf("get %q", key), err)
		}
		return e, true, nil
	}
	return nil, false, fmt.Errorf("mongo: get %q: body kept changing while being read", key)
}

// errBodyGone reports a GridFS body deleted while being read.
var errBodyGone = errors.New("gridfs body gone")

// withBody converts d, reading its body from GridFS when it lives there.
func (b *Backend) withBody(ctx context.Context, d *document) (*cache.Entry, error) {
	e := d.entry()
	e.RequestBody = d.RequestBody
	if d.BodyFile == nil {
		e.Body = d.Body
		if e.Body == nil {
			e.Body = []byte{}
		}
		return e, nil
	}
	buf := bytes.NewBuffer(make([]byte, 0, d.Size))
	_, err := b.bucket().DownloadToStream(ctx, *d.BodyFile, buf)
	if errors.Is(err, mongodrv.ErrFileNotFound) || errors.Is(err, mongodrv.ErrMissingChunk) || errors.Is(err, mongodrv.ErrWrongSize) {
		return nil, errBodyGone
	}
	if err != nil {
		return nil, fmt.Errorf("read body from GridFS: %w", err)
	}
	e.Body = buf.Bytes()
	return e, nil
}

// Put stores e. A body over the GridFS threshold is written to GridFS
// first and the document after it, so the document never names a body
// that is not whole; the body of the entry it replaces is deleted last.
// A crash between the two writes leaves an unreferenced GridFS file,
// which DeleteExpired removes.
func (b *Backend) Put(ctx context.Context, e *cache.Entry) error {
	op := fmt.Sprintf("put %q", e.Key)
	if err := b.check(); err != nil {
		return wrap(op, err)
	}
	if !cache.ValidKey(e.Key) {
		return fmt.Errorf("mongo: %s: bad key: %w", op, cache.ErrInvalid)
	}
	d := newDocument(e)
	if int64(len(e.Body)) > b.threshold {
		id := bson.NewObjectID()
		if err := b.upload(ctx, id, e.Key, e.Body); err != nil {
			return wrap(op, err)
		}
		d.BodyFile = &id
	} else {
		d.Body = e.Body
	}
	d.boundRequestBody()
	old, _, err := b.swap(ctx, e.Key, d)
	if err != nil {
		if d.BodyFile != nil {
			// The document was not written, so nothing names the new file.
			b.deleteFile(*d.BodyFile)
		}
		return wrap(op, err)
	}
	if old != nil {
		b.deleteFile(*old)
	}
	return nil
}

// upload writes body to GridFS as file id, named after the key so that a
// person can tell files apart.
func (b *Backend) upload(ctx context.Context, id bson.ObjectID, key string, body []byte) error {
	us, err := b.bucket().OpenUploadStreamWithID(ctx, id, key)
	if err != nil {
		return fmt.Errorf("open GridFS upload: %w", err)
	}
	if _, err := us.Write(body); err != nil {
		_ = us.Abort()
		return fmt.Errorf("write GridFS body: %w", err)
	}
	if err := us.Close(); err != nil {
		_ = us.Abort()
		return fmt.Errorf("finish GridFS body: %w", err)
	}
	return nil
}

// fileRef is the part of an old document that Put and Delete need.
type fileRef struct {
	BodyFile *bson.ObjectID `bson:"body_file,omitempty"`
}

// swap replaces (d != nil) or deletes (d == nil) the document under key
// in one atomic findAndModify, and returns the GridFS file the old
// document named, if any, and whether there was an old document. Doing
// both in one step is what keeps concurrent Puts from losing track of a
// file.
func (b *Backend) swap(ctx context.Context, key string, d *document) (*bson.ObjectID, bool, error) {
	filter := bson.D{{Key: "_id", Value: key}}
	run := func(project bool) *mongodrv.SingleResult {
		proj := bson.D{{Key: "body_file", Value: 1}}
		if d == nil {
			o := options.FindOneAndDelete()
			if project {
				o.SetProjection(proj)
			}
			return b.coll.FindOneAndDelete(ctx, filter, o)
		}
		o := options.FindOneAndReplace().SetUpsert(true).SetReturnDocument(options.Before)
		if project {
			o.SetProjection(proj)
		}
		return b.coll.FindOneAndReplace(ctx, filter, d, o)
	}
	project := !b.noFAMProjection.Load()
	res := run(project)
	for range 5 {
		err := res.Err()
		if project && isNotImplemented(err) {
			// FerretDB v1 refuses the "fields" option of findAndModify.
			// The refusal comes before any write, so retrying is safe.
			b.noFAMProjection.Store(true)
			project = false
		} else if d == nil || !mongodrv.IsDuplicateKeyError(err) {
			break
		}
		// Or two upserts of a new key raced and the other inserted
		// first; now that the document exists, replacing it works.
		// (MongoDB retries this itself; FerretDB does not.)
		res = run(project)
	}
	var ref fileRef
	err := res.Decode(&ref)
	if errors.Is(err, mongodrv.ErrNoDocuments) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return ref.BodyFile, true, nil
}

// isNotImplemented reports MongoDB's NotImplemented (238) error, which
// FerretDB returns for options it lacks.
func isNotImplemented(err error) bool {
	var se mongodrv.ServerError
	return errors.As(err, &se) && se.HasErrorCode(238)
}

// deleteFile removes a GridFS body nothing refers to any more. It is best
// effort, with its own deadline so that a cancelled request still cleans
// up: a file left behind is only wasted space, and DeleteExpired sweeps
// such files.
func (b *Backend) deleteFile(id bson.ObjectID) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = b.bucket().Delete(ctx, id)
}

// Delete removes the entry under key and then its GridFS body, if any.
func (b *Backend) Delete(ctx context.Context, key string) (bool, error) {
	op := fmt.Sprintf("delete %q", key)
	if err := b.check(); err != nil {
		return false, wrap(op, err)
	}
	if !cache.ValidKey(key) {
		return false, fmt.Errorf("mongo: %s: bad key: %w", op, cache.ErrInvalid)
	}
	file, ok, err := b.swap(ctx, key, nil)
	if err != nil {
		return false, wrap(op, err)
	}
	if file != nil {
		b.deleteFile(*file)
	}
	return ok, nil
}

// RecordHits adds the hits in one unordered bulk write: $inc on the count
// and $max on the last-hit time, so batches from several gateways
// commute. Keys no longer stored match nothing and are skipped.
func (b *Backend) RecordHits(ctx context.Context, hits []cache.Hit) error {
	if err := b.check(); err != nil {
		return wrap("record hits", err)
	}
	models := make([]mongodrv.WriteModel, 0, len(hits))
	for _, h := range hits {
		if !cache.ValidKey(h.Key) {
			continue // cannot be stored, so there is nothing to count
		}
		models = append(models, mongodrv.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: h.Key}}).
			SetUpdate(bson.D{
				{Key: "$inc", Value: bson.D{{Key: "hits", Value: h.Count}}},
				{Key: "$max", Value: bson.D{{Key: "last_hit", Value: date(h.Last)}}},
			}))
	}
	if len(models) == 0 {
		return nil
	}
	if err := b.bulkWrite(ctx, models); err != nil {
		return wrap(fmt.Sprintf("record %d hits", len(hits)), err)
	}
	return nil
}

// List returns one page, using the sort's index and a keyset condition
// from the cursor, so a deep page costs what the first one does.
func (b *Backend) List(ctx context.Context, q cache.Query) (cache.Page, error) {
	if err := b.check(); err != nil {
		return cache.Page{}, wrap("list", err)
	}
	s, err := q.Sort.Normalize()
	if err != nil {
		return cache.Page{}, fmt.Errorf("mongo: list: %w", err)
	}
	filter := query(q.Filter)
	if q.Cursor != "" {
		c, err := cache.ParseCursor(q.Cursor, s)
		if err != nil {
			return cache.Page{}, fmt.Errorf("mongo: list: %w", err)
		}
		filter = and(filter, after(c))
	}
	dir := 1
	if s.Desc {
		dir = -1
	}
	limit := q.PageLimit()
	opts := options.Find().
		SetSort(bson.D{{Key: sortField(s.Field), Value: dir}, {Key: "_id", Value: dir}}).
		SetLimit(int64(limit) + 1) // one more tells whether a next page exists
	if !q.WithBody {
		opts.SetProjection(withoutBody)
	}
	cur, err := b.coll.Find(ctx, filter, opts)
	if err != nil {
		return cache.Page{}, wrap("list", err)
	}
	var docs []document
	if err := cur.All(ctx, &docs); err != nil {
		return cache.Page{}, wrap("list", err)
	}
	var page cache.Page
	for i := range docs {
		if i == limit {
			page.Next = cache.CursorAfter(page.Entries[limit-1], s)
			break
		}
		d := &docs[i]
		var e *cache.Entry
		if q.WithBody {
			if e, err = b.withBody(ctx, d); errors.Is(err, errBodyGone) {
				// Replaced since the page was read: read it afresh, or
				// leave it out if it is gone.
				var ok bool
				if e, ok, err = b.Get(ctx, d.Key); err == nil && !ok {
					continue
				}
			}
			if err != nil {
				return cache.Page{}, wrap("list", err)
			}
		} else {
			e = d.entry()
		}
		page.Entries = append(page.Entries, e)
	}
	return page, nil
}

// Count returns the number of matching entries and their total size.
// FerretDB v1.24 computes only the first accumulator of a $group (the
// others come back 0), so the two totals are two aggregations; on
// MongoDB this costs one more round trip.
func (b *Backend) Count(ctx context.Context, f cache.Filter) (cache.Totals, error) {
	if err := b.check(); err != nil {
		return cache.Totals{}, wrap("count", err)
	}
	filter := query(f)
	n, err := b.sum(ctx, filter, 1)
	if err != nil {
		return cache.Totals{}, wrap("count", err)
	}
	if n == 0 {
		return cache.Totals{}, nil
	}
	bytes, err := b.sum(ctx, filter, "$size")
	if err != nil {
		return cache.Totals{}, wrap("count", err)
	}
	return cache.Totals{Entries: n, Bytes: bytes}, nil
}

// sum adds up expr over the documents matching filter.
func (b *Backend) sum(ctx context.Context, filter bson.D, expr any) (int64, error) {
	cur, err := b.coll.Aggregate(ctx, mongodrv.Pipeline{
		{{Key: "$match", Value: filter}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: nil}, {Key: "n", Value: bson.D{{Key: "$sum", Value: expr}}}}}},
	})
	if err != nil {
		return 0, err
	}
	var res []struct {
		N bson.RawValue `bson:"n"`
	}
	if err := cur.All(ctx, &res); err != nil {
		return 0, err
	}
	if len(res) == 0 {
		return 0, nil // no documents, no group
	}
	// $sum returns the narrowest type that holds the total.
	v := res[0].N
	if n, ok := v.AsInt64OK(); ok {
		return n, nil
	}
	if x, ok := v.DoubleOK(); ok {
		return int64(x), nil
	}
	return 0, fmt.Errorf("unexpected $sum result of type %s", v.Type)
}

// DeleteMatching removes the entries matching f. Inline entries go in one
// deleteMany; entries with a GridFS body go one by one, each document
// before its file, so no reader sees a document without its body.
func (b *Backend) DeleteMatching(ctx context.Context, f cache.Filter) (int64, error) {
	if err := b.check(); err != nil {
		return 0, wrap("delete matching", err)
	}
	n, err := b.deleteWhere(ctx, query(f))
	if err != nil {
		return n, wrap("delete matching", err)
	}
	return n, nil
}

func (b *Backend) deleteWhere(ctx context.Context, filter bson.D) (int64, error) {
	inline := bson.D{{Key: "body_file", Value: bson.D{{Key: "$exists", Value: false}}}}
	res, err := b.coll.DeleteMany(ctx, and(filter, inline))
	if err != nil {
		return 0, err
	}
	n := res.DeletedCount
	files := bson.D{{Key: "body_file", Value: bson.D{{Key: "$exists", Value: true}}}}
	cur, err := b.coll.Find(ctx, and(filter, files), options.Find().SetProjection(bson.D{{Key: "body_file", Value: 1}}))
	if err != nil {
		return n, err
	}
	var refs []struct {
		Key      string        `bson:"_id"`
		BodyFile bson.ObjectID `bson:"body_file"`
	}
	if err := cur.All(ctx, &refs); err != nil {
		return n, err
	}
	for _, r := range refs {
		// Delete only if the document still names this file: a Put that
		// replaced it meanwhile deletes the old file itself.
		res, err := b.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: r.Key}, {Key: "body_file", Value: r.BodyFile}})
		if err != nil {
			return n, err
		}
		if res.DeletedCount == 1 {
			n++
			b.deleteFile(r.BodyFile)
		}
	}
	return n, nil
}

// orphanAge is how old an unreferenced GridFS file must be before
// DeleteExpired removes it: far longer than any Put takes between writing
// a body and the document that names it.
const orphanAge = time.Hour

// DeleteExpired removes entries stale at now, then GridFS files that no
// entry names (left by a crash in the middle of a Put or Delete).
func (b *Backend) DeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	if err := b.check(); err != nil {
		return 0, wrap("delete expired", err)
	}
	n, err := b.deleteWhere(ctx, query(cache.Filter{Freshness: cache.Expired, Now: now}))
	b.purged.Add(n)
	if err != nil {
		return n, wrap("delete expired", err)
	}
	if err := b.sweepOrphans(ctx, time.Now().Add(-orphanAge)); err != nil {
		return n, wrap("delete expired: sweep GridFS", err)
	}
	return n, nil
}

// Purged returns how many expired entries DeleteExpired removed.
func (b *Backend) Purged() int64 { return b.purged.Load() }

// sweepOrphans deletes GridFS files uploaded before cutoff that no entry
// names.
func (b *Backend) sweepOrphans(ctx context.Context, cutoff time.Time) error {
	cur, err := b.bucket().GetFilesCollection().Find(ctx,
		bson.D{{Key: "uploadDate", Value: bson.D{{Key: "$lt", Value: date(cutoff)}}}},
		options.Find().SetProjection(bson.D{{Key: "filename", Value: 1}}))
	if err != nil {
		return err
	}
	var files []struct {
		ID  bson.ObjectID `bson:"_id"`
		Key string        `bson:"filename"`
	}
	if err := cur.All(ctx, &files); err != nil {
		return err
	}
	for _, f := range files {
		used, err := b.coll.CountDocuments(ctx, bson.D{{Key: "_id", Value: f.Key}, {Key: "body_file", Value: f.ID}})
		if err != nil {
			return err
		}
		if used == 0 {
			if err := b.bucket().Delete(ctx, f.ID); err != nil && !errors.Is(err, mongodrv.ErrFileNotFound) {
				return err
			}
		}
	}
	return nil
}

// Clear removes every entry and its body.
func (b *Backend) Clear(ctx context.Context) error {
	if err := b.check(); err != nil {
		return wrap("clear", err)
	}
	if _, err := b.deleteWhere(ctx, bson.D{}); err != nil {
		return wrap("clear", err)
	}
	return nil
}
