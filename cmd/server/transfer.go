package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/mattn/go-isatty"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/transfer"
	"github.com/cachegate/cachegate/web"
)

func init() {
	subcommands["export"] = runExport
	subcommands["import"] = runImport
	subcommands["copy"] = runCopy
}

// usageError is a bad flag or argument: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// newCommandFlags returns a flag set that reports to stderr and prints usage
// with the synopsis.
func newCommandFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cachegate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and returns the exit code to stop with, or -1 to
// go on. Help exits 0; anything else the flag package rejects exits 2
// (it has already named the flag).
func parseFlags(fs *flag.FlagSet, args []string) int {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		return 2
	case fs.NArg() > 0:
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q (flags go before it? see -h)\n", fs.Name(), fs.Arg(0))
		return 2
	}
	return -1
}

// filterFlags are the flags that select entries, mirroring cache.Filter.
type filterFlags struct {
	f              cache.Filter
	fresh, expired bool
}

func addFilterFlags(fs *flag.FlagSet) *filterFlags {
	ff := &filterFlags{}
	fs.StringVar(&ff.f.Upstream, "upstream", "", "only entries of this upstream `name`")
	fs.StringVar(&ff.f.URL, "url", "", "only URLs matching this `pattern`: a glob when it holds * or ?, else a substring")
	fs.Func("method", "only this request `method` (GET, POST...)", func(s string) error {
		ff.f.Method = strings.ToUpper(strings.TrimSpace(s))
		return nil
	})
	fs.Func("status", "only this response `status` (e.g. 200)", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 100 || n > 999 {
			return errors.New("want a status code from 100 to 999")
		}
		ff.f.Status = n
		return nil
	})
	fs.StringVar(&ff.f.ContentType, "content-type", "", "only this media `type`; image/ or image/* for every image")
	fs.BoolVar(&ff.fresh, "fresh", false, "only entries that are still fresh")
	fs.BoolVar(&ff.expired, "expired", false, "only entries that have expired")
	size := func(dst *int64) func(string) error {
		return func(s string) error {
			n, err := humanize.ParseBytes(s)
			if err != nil {
				return errors.New("want a size like 512, 64KiB or 10MB")
			}
			*dst = int64(n)
			return nil
		}
	}
	fs.Func("min-size", "only bodies of at least this `size` (64KiB, 1MB...)", size(&ff.f.MinSize))
	fs.Func("max-size", "only bodies of at most this `size`", size(&ff.f.MaxSize))
	return ff
}

// filter returns the cache.Filter the flags describe.
func (ff *filterFlags) filter() (cache.Filter, error) {
	f := ff.f
	switch {
	case ff.fresh && ff.expired:
		return f, usagef("-fresh and -expired exclude each other: give one or neither")
	case ff.fresh:
		f.Freshness = cache.Fresh
	case ff.expired:
		f.Freshness = cache.Expired
	}
	if f.MinSize > 0 && f.MaxSize > 0 && f.MinSize > f.MaxSize {
		return f, usagef("-min-size %s is above -max-size %s", humanize.IBytes(uint64(f.MinSize)), humanize.IBytes(uint64(f.MaxSize)))
	}
	return f, nil
}

// backendFlag registers -NAME, defaulting to CACHEGATE_BACKEND and then
// the server's default backend.
func backendFlag(fs *flag.FlagSet, name, help string, getenv func(string) string) *string {
	def := getenv("CACHEGATE_BACKEND")
	if def == "" {
		def = defaultBackend
	}
	return fs.String(name, def, help+" (`DSN`: sqlite://FILE, memory://, file:///DIR, mongodb://HOST/DB; env CACHEGATE_BACKEND)")
}

// openBackend opens the backend a flag names. A source (mustExist) that
// is a SQLite file must exist already: opening would otherwise create an
// empty database and the command would quietly move nothing.
func openBackend(ctx context.Context, flagName, dsn string, mustExist bool) (cache.Backend, error) {
	if err := checkDSN(dsn); err != nil {
		return nil, usagef("-%s: %v", flagName, err)
	}
	if path, ok := sqlitePath(dsn); ok && mustExist {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("-%s %s: %w", flagName, dsn, err)
		}
	}
	b, err := web.OpenBackend(ctx, withoutHotTier(dsn))
	if err != nil {
		return nil, fmt.Errorf("-%s: %w", flagName, err)
	}
	return b, nil
}

// withoutHotTier turns off web's in-memory hot tier unless the DSN sets
// hot_size itself. A transfer sees each entry once, so the tier would only
// hold copies nobody reads again (measured: a 100,000-entry SQLite copy
// peaked at 507 MB RSS with the tier, 160 MB without, most of that
// SQLite's page caches).
func withoutHotTier(dsn string) string {
	scheme, _, _ := strings.Cut(dsn, "://")
	_, query, _ := strings.Cut(dsn, "?")
	if strings.EqualFold(scheme, "memory") || strings.Contains("&"+query, "&hot_size=") {
		return dsn
	}
	if query != "" || strings.HasSuffix(dsn, "?") {
		return dsn + "&hot_size=0"
	}
	return dsn + "?hot_size=0"
}

// sqlitePath returns the file of a sqlite:// DSN.
func sqlitePath(dsn string) (string, bool) {
	scheme, rest, _ := strings.Cut(dsn, "://")
	if !strings.EqualFold(scheme, "sqlite") {
		return "", false
	}
	path, _, _ := strings.Cut(rest, "?")
	return path, path != ""
}

// signalContext is cancelled on SIGINT or SIGTERM, so an interrupted
// transfer stops between entries and still reports what it did.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// fail reports err and returns its exit code: 2 for usage errors, else 1.
func fail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "cachegate %s: %v\n", cmd, err)
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func runExport(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newCommandFlags("export", "cachegate export [-backend DSN] [filter flags] [-format ndjson|har] [-out FILE] > FILE", stderr)
	dsn := backendFlag(fs, "backend", "backend to export", getenv)
	format := fs.String("format", "ndjson", "output `format`: ndjson (cachegate's, for import) or har (HTTP Archive 1.2)")
	out := fs.String("out", "", "write to `FILE` instead of standard output (removed again if the export fails)")
	ff := addFilterFlags(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	fmtv, err := transfer.ParseFormat(*format)
	if err != nil {
		return fail(stderr, "export", usagef("-format: %v", err))
	}
	filter, err := ff.filter()
	if err != nil {
		return fail(stderr, "export", err)
	}
	ctx, stop := signalContext()
	defer stop()
	b, err := openBackend(ctx, "backend", *dsn, true)
	if err != nil {
		return fail(stderr, "export", err)
	}
	defer b.Close()

	w := stdout
	var file *os.File
	if *out != "" {
		if file, err = os.Create(*out); err != nil {
			return fail(stderr, "export", fmt.Errorf("-out: %w", err))
		}
		w = file
	}
	bar := newProgressBar(stderr, "exporting", 0)
	res, err := transfer.Export(ctx, b, w, transfer.ExportOptions{Format: fmtv, Filter: filter, Progress: bar.update})
	bar.clear()
	if file != nil {
		if cerr := file.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("-out: %w", cerr)
		}
		if err != nil {
			os.Remove(*out)
		}
	}
	summary(stderr, "exported", res)
	if err != nil {
		return fail(stderr, "export", err)
	}
	return 0
}

func runImport(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newCommandFlags("import", "cachegate import [-backend DSN] [-on-error skip|stop] [-in FILE] < FILE", stderr)
	dsn := backendFlag(fs, "backend", "backend to import into", getenv)
	in := fs.String("in", "", "read the export from `FILE` instead of standard input")
	onError := fs.String("on-error", "stop", "on a damaged entry: `stop` there, or skip it and go on (exit code 1 either way)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	mode, err := transfer.ParseErrorMode(*onError)
	if err != nil {
		return fail(stderr, "import", usagef("-on-error: %v", err))
	}
	r, size := stdin, int64(0)
	if *in != "" {
		f, err := os.Open(*in)
		if err != nil {
			return fail(stderr, "import", fmt.Errorf("-in: %w", err))
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		r = f
	}
	ctx, stop := signalContext()
	defer stop()
	b, err := openBackend(ctx, "backend", *dsn, false)
	if err != nil {
		return fail(stderr, "import", err)
	}
	defer b.Close()

	bar := newProgressBar(stderr, "importing", size)
	res, err := transfer.Import(ctx, b, r, transfer.ImportOptions{OnError: mode, Progress: bar.update})
	bar.clear()
	entryErrors(stderr, "import", res)
	summary(stderr, "imported", res)
	if err != nil {
		return fail(stderr, "import", err)
	}
	if res.Failed > 0 {
		return 1
	}
	return 0
}

func runCopy(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newCommandFlags("copy", "cachegate copy -from DSN -to DSN [filter flags] [-on-error skip|stop]", stderr)
	from := fs.String("from", "", "backend to copy from (`DSN`)")
	to := fs.String("to", "", "backend to copy into (`DSN`); entries with the same keys are replaced")
	onError := fs.String("on-error", "stop", "when an entry cannot be stored: `stop` there, or skip it and go on (exit code 1 either way)")
	ff := addFilterFlags(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	var err error
	switch {
	case *from == "":
		err = usagef("-from: the backend to copy from is required")
	case *to == "":
		err = usagef("-to: the backend to copy into is required")
	case *from == *to:
		err = usagef("-from and -to name the same backend")
	}
	if err != nil {
		return fail(stderr, "copy", err)
	}
	mode, err := transfer.ParseErrorMode(*onError)
	if err != nil {
		return fail(stderr, "copy", usagef("-on-error: %v", err))
	}
	filter, err := ff.filter()
	if err != nil {
		return fail(stderr, "copy", err)
	}
	ctx, stop := signalContext()
	defer stop()
	src, err := openBackend(ctx, "from", *from, true)
	if err != nil {
		return fail(stderr, "copy", err)
	}
	defer src.Close()
	dst, err := openBackend(ctx, "to", *to, false)
	if err != nil {
		return fail(stderr, "copy", err)
	}
	defer dst.Close()

	bar := newProgressBar(stderr, "copying", 0)
	res, err := transfer.Copy(ctx, src, dst, transfer.CopyOptions{Filter: filter, OnError: mode, Progress: bar.update})
	bar.clear()
	entryErrors(stderr, "copy", res)
	summary(stderr, "copied", res)
	if err != nil {
		return fail(stderr, "copy", err)
	}
	if res.Failed > 0 {
		return 1
	}
	return 0
}

// entryErrors prints the failed entries a transfer recorded.
func entryErrors(stderr io.Writer, cmd string, res transfer.Result) {
	for i := range res.Errors {
		fmt.Fprintf(stderr, "cachegate %s: %v\n", cmd, &res.Errors[i])
	}
	if more := res.Failed - int64(len(res.Errors)); more > 0 {
		fmt.Fprintf(stderr, "cachegate %s: ... and %d more failed entries\n", cmd, more)
	}
}

// summary prints the final count line, always, so scripts and people see
// what happened even without a terminal.
func summary(stderr io.Writer, verb string, res transfer.Result) {
	fmt.Fprintf(stderr, "%s %d entries (%s) in %s", verb, res.Done, humanize.Bytes(uint64(res.Bytes)), roundDuration(res.Elapsed))
	if res.Failed > 0 {
		fmt.Fprintf(stderr, ", %d failed", res.Failed)
	}
	fmt.Fprintln(stderr)
}

func roundDuration(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// progressBar draws a one-line progress bar on a terminal, at most ten
// times a second. On anything else it draws nothing: the output would be
// a pile of carriage returns in a log file.
type progressBar struct {
	w       io.Writer
	verb    string
	size    int64 // input bytes, when an import reads a file of known size
	enabled bool
	last    time.Time
	drawn   bool
}

func newProgressBar(w io.Writer, verb string, inputSize int64) *progressBar {
	return &progressBar{w: w, verb: verb, size: inputSize, enabled: isTerminal(w)}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

func (p *progressBar) update(pr transfer.Progress) {
	if !p.enabled || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	frac := -1.0
	switch {
	case pr.Total > 0:
		frac = float64(pr.Done+pr.Failed) / float64(pr.Total)
	case p.size > 0:
		frac = float64(pr.Read) / float64(p.size)
	}
	line := fmt.Sprintf("%s %s entries, %s", p.verb, humanize.Comma(pr.Done), humanize.Bytes(uint64(pr.Bytes)))
	if pr.Total > 0 {
		line = fmt.Sprintf("%s %s/%s entries, %s", p.verb, humanize.Comma(pr.Done), humanize.Comma(pr.Total), humanize.Bytes(uint64(pr.Bytes)))
	}
	if pr.Failed > 0 {
		line += fmt.Sprintf(", %d failed", pr.Failed)
	}
	if frac >= 0 {
		frac = min(frac, 1)
		const width = 30
		n := int(frac * width)
		line = fmt.Sprintf("[%s%s] %3.0f%% %s", strings.Repeat("#", n), strings.Repeat(" ", width-n), frac*100, line)
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.drawn = true
}

// clear removes the bar before the final count line is printed.
func (p *progressBar) clear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
