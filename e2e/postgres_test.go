package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/cachegate/cachegate/backends/mongo/mongotest"
	"github.com/cachegate/cachegate/web"
)

// With CACHEGATE_TEST_POSTGRES=1 the MongoDB of these tests is FerretDB
// on a throwaway PostgreSQL. This one measures cachegate's hits per
// second on it, for one replica and for two sharing it: first as
// FerretDB leaves the table (every _id lookup reads it all), then with
// the GIN index that lets PostgreSQL find a key by its index, checked
// with EXPLAIN. Each hit is a MongoDB lookup: the hot tier is off for
// MongoDB by default. The load runs in this process, on the same CPUs as
// both gateways, FerretDB and PostgreSQL: read the figures against each
// other, not as the gateway's peak. The figures are logged, not
// asserted: on a machine this small FerretDB's own CPU, not the scan,
// sets the pace, so the index need not show. What is asserted is that
// the load completes (FerretDB v1 on PostgreSQL hung on hit batches
// before the backend split them) and that every answer is a hit.
func TestReplicasHitRateOnPostgres(t *testing.T) {
	if os.Getenv(mongotest.EnvPostgres) != "1" {
		t.Skip("set " + mongotest.EnvPostgres + "=1 to measure on FerretDB on PostgreSQL")
	}
	if testing.Short() {
		t.Skip("a measurement")
	}
	up := startVersionedUpstream(t)
	dsn := mongotest.URI(t)
	pg := mongotest.SharedPostgres()
	if pg == nil {
		t.Fatal("the shared MongoDB is not on PostgreSQL (CACHEGATE_TEST_MONGODB_URI set?)")
	}
	cfg := web.Config{Backend: dsn, Upstreams: []web.UpstreamConfig{upstream("up", up.url)}}
	a := startServer(t, cfg)
	b := startServer(t, cfg)

	const entries = 2000
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	fetch := func(base string, i int) (string, error) {
		resp, err := client.Get(fmt.Sprintf("%s/fetch/up/v?k=%d", base, i))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return "", err
		}
		return resp.Header.Get("X-Cache"), nil
	}
	for i := range entries {
		if got, err := fetch(a.URL(), i); err != nil || got != "MISS" {
			t.Fatalf("fill %d: %q, %v", i, got, err)
		}
	}

	// rate runs workers clients for d, each asking the replicas in turn
	// for entries spread over the whole cache, and returns hits/s.
	rate := func(d time.Duration, replicas ...*web.Server) float64 {
		const workers = 16
		var hits, others atomic.Int64
		var wg sync.WaitGroup
		deadline := time.Now().Add(d)
		start := time.Now()
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := w; time.Now().Before(deadline); n += workers {
					got, err := fetch(replicas[n%len(replicas)].URL(), (n*7919)%entries)
					if err == nil && got == "HIT" {
						hits.Add(1)
					} else {
						others.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if others.Load() > 0 {
			t.Errorf("%d answers were not hits", others.Load())
		}
		return float64(hits.Load()) / time.Since(start).Seconds()
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	database := strings.TrimPrefix(u.Path, "/")
	mc, err := mongo.Connect(options.Client().ApplyURI(dsn))
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Disconnect(ctx)
	coll := mc.Database(database).Collection("entries")
	var doc struct {
		ID string `bson:"_id"`
	}
	if err := coll.FindOne(ctx, bson.D{}).Decode(&doc); err != nil {
		t.Fatal(err)
	}

	const d = 3 * time.Second
	scanned := rate(d, a)
	plan, err := mongotest.IDLookupPlan(ctx, coll, doc.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("as FerretDB leaves it, %d entries: one replica %.0f hits/s; _id lookup plan %s", entries, scanned, nodeTypes(plan))

	if err := pg.IndexIDLookups(ctx, database); err != nil {
		t.Fatal(err)
	}
	if plan, err = mongotest.IDLookupPlan(ctx, coll, doc.ID); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "Index Scan") {
		t.Fatalf("after IndexIDLookups an _id lookup still reads the table: %s", plan)
	}
	one := rate(d, a)
	two := rate(d, a, b)
	t.Logf("with the GIN index (plan %s): one replica %.0f hits/s, two replicas %.0f hits/s in all", nodeTypes(plan), one, two)
}

// nodeTypes lists the "Node Type"s of an EXPLAIN plan in extended JSON.
func nodeTypes(plan string) string {
	var types []string
	for rest := plan; ; {
		i := strings.Index(rest, `"Node Type": "`)
		if i < 0 {
			break
		}
		rest = rest[i+len(`"Node Type": "`):]
		j := strings.IndexByte(rest, '"')
		types = append(types, rest[:j])
		rest = rest[j:]
	}
	return strings.Join(types, " > ")
}
