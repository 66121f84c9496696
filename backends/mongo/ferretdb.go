package mongo

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ferretDBWritesPerCommand bounds the updates and replacements sent to
// FerretDB in one command. FerretDB v1 keeps a connection of its
// PostgreSQL pool (50 by default) checked out for every update of a
// command until the whole command ends (a defer inside its per-update
// loop), so one bulk write of 50, or a few smaller ones at once from
// several gateways, takes every connection and then waits for one more:
// FerretDB, and every gateway on it, hangs for good. Small commands keep
// the connections a burst can hold far below the pool. MongoDB gets each
// bulk write as one command.
const ferretDBWritesPerCommand = 8

// detectFerretDB sets b.writesPerCommand when the server is FerretDB,
// which says so in buildInfo. A server that does not answer is taken for
// MongoDB: the first real operation reports the error.
func (b *Backend) detectFerretDB(ctx context.Context) {
	var info bson.M
	if err := b.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return
	}
	if _, ok := info["ferretdbVersion"]; ok {
		b.writesPerCommand = ferretDBWritesPerCommand
	}
}

// bulkWrite runs models as unordered bulk writes of at most
// b.writesPerCommand each (all in one when it is 0).
func (b *Backend) bulkWrite(ctx context.Context, models []mongodrv.WriteModel) error {
	n := b.writesPerCommand
	if n <= 0 {
		n = len(models)
	}
	for len(models) > 0 {
		chunk := models[:min(n, len(models))]
		models = models[len(chunk):]
		if _, err := b.coll.BulkWrite(ctx, chunk, options.BulkWrite().SetOrdered(false)); err != nil {
			return err
		}
	}
	return nil
}
