// Package mongotest gives tests a MongoDB to talk to without any setup.
//
// When CACHEGATE_TEST_MONGODB_URI is set, tests use that server. Otherwise
// the first call starts FerretDB v1.24 in-process, with its SQLite handler
// in a temporary directory, on a free 127.0.0.1 port; every test binary
// shares that one server. Tests never skip for want of a MongoDB.
//
// In a -race build FerretDB runs as a child process built without -race
// (FerretDB's race build turns on its debug checks and is far too slow);
// the child is built with the go command on first use and exits with the
// test binary.
//
// Each test gets its own database (URI), dropped when the test ends, so
// tests stay isolated even when they run in parallel. A test binary that
// wants the temporary directory removed calls Shutdown from TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		mongotest.Shutdown()
//		os.Exit(code)
//	}
package mongotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// EnvURI names the environment variable that points tests at a real
// MongoDB instead of the in-process FerretDB.
const EnvURI = "CACHEGATE_TEST_MONGODB_URI"

var (
	once     sync.Once
	shared   *Server // nil when EnvURI is used
	baseURI  string
	client   *mongo.Client // drops test databases
	startErr error
)

// URI returns a mongodb:// URI naming a new, empty database that only the
// calling test uses; the database is dropped when the test ends. The first
// call starts the shared server (see the package documentation).
func URI(tb testing.TB) string {
	tb.Helper()
	once.Do(start)
	if startErr != nil {
		tb.Fatalf("mongotest: %v", startErr)
	}
	db := DatabaseName(tb)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := client.Database(db).Drop(ctx); err != nil {
			tb.Logf("mongotest: drop database %s: %v", db, err)
		}
	})
	return WithDatabase(baseURI, db)
}

// nonAlnum matches what MongoDB does not accept (or we'd rather not have)
// in a database name.
var nonAlnum = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// DatabaseName returns a database name unique to this call, readable after
// the test's name. MongoDB limits names to 63 bytes, so the test name is
// shortened to leave room for a random suffix.
func DatabaseName(tb testing.TB) string {
	name := strings.Trim(nonAlnum.ReplaceAllString(tb.Name(), "_"), "_")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "t_" + name + "_" + hex.EncodeToString(b[:])
}

// WithDatabase returns uri with its path replaced by database, keeping
// the query (options) as it was.
func WithDatabase(uri, database string) string {
	u, err := url.Parse(uri)
	if err != nil {
		// Not a URI we can edit; let the caller's Open report it.
		return uri
	}
	u.Path = "/" + database
	u.RawPath = ""
	return u.String()
}

func start() {
	if uri := os.Getenv(EnvURI); uri != "" {
		baseURI = uri
	} else if os.Getenv(EnvPostgres) == "1" {
		s, err := startOnPostgres()
		if err != nil {
			startErr = err
			return
		}
		shared = s
		baseURI = s.URI()
	} else {
		dir, err := os.MkdirTemp("", "cachegate-ferretdb-")
		if err != nil {
			startErr = err
			return
		}
		s, err := startServer(dir, "127.0.0.1:0")
		if err != nil {
			os.RemoveAll(dir)
			startErr = err
			return
		}
		shared = s
		baseURI = s.URI()
	}
	client, startErr = mongo.Connect(options.Client().ApplyURI(baseURI).SetServerSelectionTimeout(10 * time.Second))
	if startErr != nil {
		startErr = fmt.Errorf("connect to %s: %w", baseURI, startErr)
	}
}

// Shutdown stops the shared FerretDB, if this binary started one, and
// removes its directory. Call it from TestMain after m.Run.
func Shutdown() {
	if client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = client.Disconnect(ctx)
		cancel()
	}
	if shared != nil {
		shared.Stop()
		if sharedPostgres != nil {
			sharedPostgres.Stop()
		}
		os.RemoveAll(shared.dir)
	}
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// Server is one FerretDB that a test can stop and start again on the
// same address, to exercise connection loss and recovery.
type Server struct {
	dir  string
	addr string
	// postgresURL, when set, is the PostgreSQL that FerretDB stores in
	// (its postgresql handler) instead of SQLite files in dir.
	postgresURL string

	mu   sync.Mutex    // protects stop and done
	stop func()        // nil while stopped
	done chan struct{} // closed when the server has stopped
}

// NewServer starts a FerretDB of the test's own, storing its data in a
// temporary directory, and stops it when the test ends. Unlike URI it
// always uses FerretDB, even when EnvURI is set, because the test needs
// to control the server's life.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	s, err := startServer(tb.TempDir(), "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("mongotest: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

func startServer(dir, addr string) (*Server, error) {
	return (&Server{dir: dir}).startOn(addr)
}

// startOn starts s on addr, "127.0.0.1:0" for a free port.
func (s *Server) startOn(addr string) (*Server, error) {
	if addr == "127.0.0.1:0" {
		// FerretDB binds its own listener, so find a free port first. The
		// port could in theory be taken between Close and FerretDB's
		// Listen; nothing else in a test run competes for it.
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		addr = l.Addr().String()
		l.Close()
	}
	s.addr = addr
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// URI returns the server's mongodb:// URI, without a database.
func (s *Server) URI() string { return "mongodb://" + s.addr + "/" }

// Start starts the server on its address; it is a no-op while it runs.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		return nil
	}
	var err error
	if raceEnabled {
		s.stop, s.done, err = s.runChild()
	} else {
		s.stop, s.done, err = s.runInProcess()
	}
	if err != nil {
		return err
	}
	// FerretDB binds its listener asynchronously: wait until it accepts.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			s.stop()
			s.stop, s.done = nil, nil
			return fmt.Errorf("FerretDB did not listen on %s: %w", s.addr, err)
		}
		select {
		case <-s.done:
			s.stop, s.done = nil, nil
			return errors.New("FerretDB stopped while starting (is the port taken?)")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *Server) runInProcess() (func(), chan struct{}, error) {
	cfg := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: s.addr},
		// FerretDB logs every failed command at warning level with a dump
		// of the message; errors are what a failing test wants to see.
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Handler:   "sqlite",
		SQLiteURL: "file:" + s.dir + "/",
	}
	if s.postgresURL != "" {
		cfg.Handler, cfg.SQLiteURL, cfg.PostgreSQLURL = "postgresql", "", s.postgresURL
	}
	f, err := ferretdb.New(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("start FerretDB: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	return func() { cancel(); <-done }, done, nil
}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// buildChild builds ferretdb/main.go without -race, once per test binary.
func buildChild() (string, error) {
	buildOnce.Do(func() {
		goCmd, err := exec.LookPath("go")
		if err != nil {
			goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		if binDir, buildErr = os.MkdirTemp("", "cachegate-ferretdb-bin-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "ferretdb")
		cmd := exec.Command(goCmd, "build", "-o", binPath, "github.com/cachegate/cachegate/backends/mongo/mongotest/ferretdb")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build FerretDB without -race: %v\n%s", err, out)
		}
	})
	return binPath, buildErr
}

func (s *Server) runChild() (func(), chan struct{}, error) {
	bin, err := buildChild()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(bin, "-listen", s.addr, "-dir", s.dir, "-postgres", s.postgresURL)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // the child exits when it closes
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start FerretDB: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = cmd.Wait()
	}()
	stop := func() {
		stdin.Close()
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	return stop, done, nil
}

// Stop stops the server and waits until it has closed its listener and
// connections; it is a no-op when the server is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop, s.done = nil, nil
}
