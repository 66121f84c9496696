package main

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// mongoServer names the server behind uri from its buildInfo, so that the
// report says what cachegate-mongodb's figures were measured against.
func mongoServer(ctx context.Context, uri string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return "", err
	}
	defer client.Disconnect(context.Background())
	var info bson.M
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return "", err
	}
	return describeMongoServer(info), nil
}

// describeMongoServer turns a buildInfo reply into a line for the report.
func describeMongoServer(info bson.M) string {
	fv, ok := info["ferretdbVersion"]
	if !ok {
		return fmt.Sprintf("MongoDB %v", info["version"])
	}
	name := fmt.Sprintf("FerretDB %v", fv)
	if fv == "unknown" { // an embedded build carries no version
		name = "FerretDB (version unknown, an embedded build)"
	}
	return name + fmt.Sprintf(" answering as MongoDB %v. With its SQLite handler, the one cachegate's tests start, FerretDB 1.x finds a document by `_id` with a full table scan (its `_id` index is on `_ferretdb_sjson->'_id'`, its query on `->'$._id'`), so every cache lookup reads the whole collection and the figures fall as the collection grows: they measure FerretDB more than cachegate; point `-mongodb` at a MongoDB server for cachegate's own", info["version"])
}
