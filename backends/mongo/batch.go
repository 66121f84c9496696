package mongo

import (
	"context"
	"fmt"

	"github.com/cachegate/cachegate/cache"
	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

var _ cache.BatchPutter = (*Backend)(nil)

// PutMany stores entries as Put would, with one bulk write for those whose
// bodies fit in their document instead of one round trip each; entries
// with GridFS bodies go through Put. A later entry replaces an earlier one
// with the same key. GridFS files of the replaced documents are looked up
// before the write and deleted after it; a Put of the same key by another
// gateway in between can leave a file behind, which DeleteExpired's sweep
// removes. On error some entries may be stored, each whole.
func (b *Backend) PutMany(ctx context.Context, entries []*cache.Entry) error {
	op := fmt.Sprintf("put many (%d entries)", len(entries))
	if err := b.check(); err != nil {
		return wrap(op, err)
	}
	var models []mongodrv.WriteModel
	var keys []string
	index := map[string]int{}
	for _, e := range entries {
		if !cache.ValidKey(e.Key) {
			return fmt.Errorf("mongo: %s: bad key %q: %w", op, e.Key, cache.ErrInvalid)
		}
		if int64(len(e.Body)) > b.threshold {
			if err := b.Put(ctx, e); err != nil {
				return err
			}
			continue
		}
		d := newDocument(e)
		d.Body = e.Body
		d.boundRequestBody()
		m := mongodrv.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: e.Key}}).SetReplacement(d).SetUpsert(true)
		if i, ok := index[e.Key]; ok {
			models[i] = m
			continue
		}
		index[e.Key] = len(models)
		models = append(models, m)
		keys = append(keys, e.Key)
	}
	if len(models) == 0 {
		return nil
	}
	var old []bson.ObjectID
	cur, err := b.coll.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}},
		options.Find().SetProjection(bson.D{{Key: "body_file", Value: 1}}))
	if err != nil {
		return wrap(op, err)
	}
	for cur.Next(ctx) {
		var ref fileRef
		if err := cur.Decode(&ref); err == nil && ref.BodyFile != nil {
			old = append(old, *ref.BodyFile)
		}
	}
	if err := cur.Close(ctx); err != nil {
		return wrap(op, err)
	}
	write := func() error { return b.bulkWrite(ctx, models) }
	err = write()
	if mongodrv.IsDuplicateKeyError(err) {
		// Two upserts of a new key raced (MongoDB retries these itself,
		// FerretDB does not); the documents exist now, so again works.
		err = write()
	}
	if err != nil {
		return wrap(op, err)
	}
	for _, id := range old {
		b.deleteFile(id)
	}
	return nil
}
