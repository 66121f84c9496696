package mongotest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// EnvPostgres names the environment variable that, set to 1, has URI
// start the shared FerretDB on a throwaway PostgreSQL cluster (FerretDB's
// postgresql handler) instead of SQLite files; PostgresBin must find
// PostgreSQL. FerretDB 1.24 looks an _id up with a JSON containment test
// (_jsonb->'_id' @> '"key"') on both handlers, which its own B-tree index
// on _jsonb->'_id' cannot answer: every lookup reads the whole table.
// On PostgreSQL, IndexIDLookups adds the GIN index that can.
const EnvPostgres = "CACHEGATE_TEST_POSTGRES"

// PostgresBin returns the directory holding PostgreSQL's initdb and
// postgres: the one of initdb on PATH, else the newest
// /usr/lib/postgresql/*/bin (Debian keeps them off PATH).
func PostgresBin() (string, bool) {
	if p, err := exec.LookPath("initdb"); err == nil {
		// A link on PATH stands for the directory that holds the rest
		// (pg_isready, postgres).
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Dir(p), true
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, true
		}
	}
	return "", false
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Postgres is a throwaway PostgreSQL cluster in a directory of its own,
// listening on 127.0.0.1 only, with trust authentication.
type Postgres struct {
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// StartPostgres creates a cluster in dir (which must be empty or absent)
// with the binaries of bin and starts it on a free port. PostgreSQL
// refuses to run as root: as root, the cluster runs as the user
// "postgres" (Debian's package creates it), and dir is handed to it: its
// parents must let that user through (os.MkdirTemp("", ...) does; a
// test's TempDir does not).
func StartPostgres(bin, dir string) (*Postgres, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL will not run as root and there is no user postgres: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	run := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = dir
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := &Postgres{bin: bin, dir: dir, port: port, done: make(chan struct{})}
	p.cmd = run("postgres", "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200")
	logFile, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return nil, err
	}
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	go func() {
		defer close(p.done)
		_ = p.cmd.Wait()
		logFile.Close()
	}()
	// Wait until it takes sessions (it listens before it has recovered),
	// or until it exits.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := exec.Command(filepath.Join(bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres")
		if ready.Run() == nil {
			return p, nil
		}
		select {
		case <-p.done:
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			return nil, fmt.Errorf("postgres exited while starting:\n%s", log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			return nil, fmt.Errorf("postgres did not take sessions within 30s:\n%s", log)
		}
	}
}

func (p *Postgres) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// URL returns the URL of the cluster's database "postgres", for
// FerretDB's PostgreSQL handler.
func (p *Postgres) URL() string {
	return "postgres://postgres@" + p.addr() + "/postgres?sslmode=disable"
}

// Stop shuts the cluster down (fast shutdown: open sessions end) and
// waits for it.
func (p *Postgres) Stop() {
	if p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// StartServerOnPostgres starts FerretDB (in this process, or as a child
// in a -race build, as for SQLite) on addr ("127.0.0.1:0" for a free port) with its PostgreSQL handler on
// pgURL.
func StartServerOnPostgres(pgURL, addr string) (*Server, error) {
	return (&Server{postgresURL: pgURL}).startOn(addr)
}

// IDLookupPlan returns what the server's explain says of finding the
// document with _id key in coll (extended JSON): FerretDB puts the
// backend's own plan there (PostgreSQL's EXPLAIN).
func IDLookupPlan(ctx context.Context, coll *mongo.Collection, key string) (string, error) {
	var out bson.Raw
	err := coll.Database().RunCommand(ctx, bson.D{
		{Key: "explain", Value: bson.D{
			{Key: "find", Value: coll.Name()},
			{Key: "filter", Value: bson.D{{Key: "_id", Value: key}}},
		}},
	}).Decode(&out)
	if err != nil {
		return "", err
	}
	return out.String(), nil
}

// sharedPostgres is the cluster under the shared server when EnvPostgres
// is set.
var sharedPostgres *Postgres

// startOnPostgres starts a cluster in a new temporary directory and the
// shared FerretDB on it; the Server's dir is that directory.
func startOnPostgres() (*Server, error) {
	bin, ok := PostgresBin()
	if !ok {
		return nil, fmt.Errorf("%s=1 but no PostgreSQL (initdb) found", EnvPostgres)
	}
	dir, err := os.MkdirTemp("", "cachegate-postgres-")
	if err != nil {
		return nil, err
	}
	pg, err := StartPostgres(bin, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s, err := StartServerOnPostgres(pg.URL(), "127.0.0.1:0")
	if err != nil {
		pg.Stop()
		os.RemoveAll(dir)
		return nil, err
	}
	s.dir = dir
	sharedPostgres = pg
	return s, nil
}

// SharedPostgres returns the cluster under the shared server, nil unless
// EnvPostgres is set (and URI was called).
func SharedPostgres() *Postgres { return sharedPostgres }

// Psql runs one SQL script on the cluster's database "postgres" and
// returns its output (unaligned, tuples only).
func (p *Postgres) Psql(ctx context.Context, script string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(p.bin, "psql"), "-h", "127.0.0.1", "-p", strconv.Itoa(p.port),
		"-U", "postgres", "-d", "postgres", "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql: %v: %s", err, out)
	}
	return string(out), nil
}

// IndexIDLookups adds to every collection table of the MongoDB database
// (a PostgreSQL schema, for FerretDB) a GIN index on _jsonb->'_id', the
// index FerretDB's _id lookups (a containment test) can use, and has
// PostgreSQL analyze the tables. Tables created later get none: call it
// once the collections exist. FerretDB does not know of the index; it
// only changes how PostgreSQL finds the rows.
func (p *Postgres) IndexIDLookups(ctx context.Context, database string) error {
	// FerretDB names a collection's table after the collection and a hash
	// and keeps its metadata in _ferretdb_database_metadata.
	tables, err := p.Psql(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = '"+
		strings.ReplaceAll(database, "'", "''")+"' AND tablename NOT LIKE '\\_ferretdb\\_%'")
	if err != nil {
		return err
	}
	for _, table := range strings.Fields(tables) {
		id := pgIdent(database) + "." + pgIdent(table)
		if _, err := p.Psql(ctx, "CREATE INDEX IF NOT EXISTS "+pgIdent(table+"_id_gin")+" ON "+id+
			" USING gin ((_jsonb->'_id') jsonb_path_ops); ANALYZE "+id); err != nil {
			return err
		}
	}
	return nil
}

func pgIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
