package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachegate/cachegate/jobs"
)

// wait waits for j to end and returns its final snapshot.
func wait(tb testing.TB, j *jobs.Job) jobs.Snapshot {
	tb.Helper()
	select {
	case <-j.Done():
	case <-time.After(5 * time.Second):
		tb.Fatalf("job %s did not end", j.ID())
	}
	return j.Snapshot()
}

func TestJobCountsProgressAndEnds(t *testing.T) {
	r := jobs.New(jobs.Options{})
	defer r.Close()
	j, err := r.Start(context.Background(), jobs.Spec{Kind: "test", Target: "default"}, func(ctx context.Context, j *jobs.Job) (any, error) {
		j.SetTotal(3)
		j.Add(2)
		j.Fail(jobs.EntryError{Key: "k", Error: "boom"})
		return map[string]int{"x": 1}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s := wait(t, j)
	if s.State != jobs.Done || s.Done != 2 || s.Total != 3 || s.Failed != 1 || len(s.Errors) != 1 || s.Finished == nil {
		t.Fatalf("snapshot = %+v", s)
	}
	if s.Result.(map[string]int)["x"] != 1 {
		t.Fatalf("result = %v", s.Result)
	}
	got, err := r.Get(j.ID())
	if err != nil || got != j {
		t.Fatalf("Get = %v, %v", got, err)
	}
}

// TestSkipIsNeitherDoneNorFailed checks that a skipped entry is counted
// apart, with its reason kept beside the failures and marked as a skip.
func TestSkipIsNeitherDoneNorFailed(t *testing.T) {
	r := jobs.New(jobs.Options{})
	defer r.Close()
	j, err := r.Start(context.Background(), jobs.Spec{Kind: "revalidate"}, func(ctx context.Context, j *jobs.Job) (any, error) {
		j.SetTotal(3)
		j.Add(1)
		j.Skip(jobs.EntryError{Key: "s", Error: "query parameter api_key was stored REDACTED"})
		j.Fail(jobs.EntryError{Key: "f", Error: "boom"})
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s := wait(t, j)
	if s.Done != 1 || s.Failed != 1 || s.Skipped != 1 || len(s.Errors) != 2 {
		t.Fatalf("snapshot = %+v, want 1 done, 1 failed, 1 skipped", s)
	}
	if got := s.Errors[0]; got.Key != "s" || got.Outcome != jobs.OutcomeSkipped || got.Error == "" {
		t.Fatalf("skip recorded as %+v", got)
	}
	if got := s.Errors[1]; got.Outcome != "" {
		t.Fatalf("failure recorded with outcome %q, want none", got.Outcome)
	}
}

func TestFailureAndPanic(t *testing.T) {
	r := jobs.New(jobs.Options{})
	defer r.Close()
	for _, tc := range []struct {
		name string
		fn   jobs.Func
		want string
	}{
		{"error", func(context.Context, *jobs.Job) (any, error) { return nil, errors.New("disk full") }, "disk full"},
		{"panic", func(context.Context, *jobs.Job) (any, error) { panic("oops") }, "job panicked: oops"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := r.Start(context.Background(), jobs.Spec{Kind: tc.name}, tc.fn)
			if err != nil {
				t.Fatal(err)
			}
			s := wait(t, j)
			if s.State != jobs.Failed || s.Error != tc.want {
				t.Fatalf("state %s, error %q; want failed, %q", s.State, s.Error, tc.want)
			}
		})
	}
}

func TestErrorsAreCapped(t *testing.T) {
	r := jobs.New(jobs.Options{})
	defer r.Close()
	j, _ := r.Start(context.Background(), jobs.Spec{Kind: "test"}, func(ctx context.Context, j *jobs.Job) (any, error) {
		for i := 0; i < jobs.MaxErrors*3; i++ {
			j.Fail(jobs.EntryError{Key: fmt.Sprint(i), Error: "x"})
		}
		return nil, nil
	})
	s := wait(t, j)
	if got, want := len(s.Errors), jobs.MaxErrors; got != want {
		t.Fatalf("kept %d errors, want %d", got, want)
	}
	if got, want := s.Failed, int64(jobs.MaxErrors*3); got != want {
		t.Fatalf("failed = %d, want %d", got, want)
	}
}

// blocker returns a job function that runs until ctx ends or release is
// closed.
func blocker(release <-chan struct{}) jobs.Func {
	return func(ctx context.Context, j *jobs.Job) (any, error) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-release:
			return nil, nil
		}
	}
}

func TestConflictingLock(t *testing.T) {
	r := jobs.New(jobs.Options{})
	defer r.Close()
	release := make(chan struct{})
	first, err := r.Start(context.Background(), jobs.Spec{Kind: "revalidate", Lock: "revalidate/default"}, blocker(release))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(context.Background(), jobs.Spec{Kind: "revalidate", Lock: "revalidate/default"}, blocker(release)); !errors.Is(err, jobs.ErrConflict) {
		t.Fatalf("second job on the same lock: %v, want ErrConflict", err)
	}
	other, err := r.Start(context.Background(), jobs.Spec{Kind: "revalidate", Lock: "revalidate/archive"}, blocker(release))
	if err != nil {
		t.Fatalf("a job on another lock: %v", err)
	}
	close(release)
	wait(t, first)
	wait(t, other)
	again, err := r.Start(context.Background(), jobs.Spec{Kind: "revalidate", Lock: "revalidate/default"}, blocker(nil))
	if err != nil {
		t.Fatalf("after the first ended: %v", err)
	}
	again.Cancel()
	wait(t, again)
}

func TestMaxRunning(t *testing.T) {
	r := jobs.New(jobs.Options{MaxRunning: 2})
	defer r.Close()
	release := make(chan struct{})
	var started []*jobs.Job
	for i := 0; i < 2; i++ {
		j, err := r.Start(context.Background(), jobs.Spec{Kind: "x"}, blocker(release))
		if err != nil {
			t.Fatal(err)
		}
		started = append(started, j)
	}
	if _, err := r.Start(context.Background(), jobs.Spec{Kind: "x"}, blocker(release)); !errors.Is(err, jobs.ErrBusy) {
		t.Fatalf("third job: %v, want ErrBusy", err)
	}
	close(release)
	for _, j := range started {
		wait(t, j)
	}
	if _, err := r.Start(context.Background(), jobs.Spec{Kind: "x"}, blocker(release)); err != nil {
		t.Fatalf("after the others ended: %v", err)
	}
}

func TestCancel(t *testing.T) {
	r := jobs.New(jobs.Options{})
	defer r.Close()
	j, _ := r.Start(context.Background(), jobs.Spec{Kind: "x"}, blocker(nil))
	if _, err := r.Cancel(j.ID()); err != nil {
		t.Fatal(err)
	}
	if s := wait(t, j); s.State != jobs.Cancelled {
		t.Fatalf("state %s, want cancelled", s.State)
	}
	if _, err := r.Cancel(j.ID()); !errors.Is(err, jobs.ErrFinished) {
		t.Fatalf("cancel a finished job: %v, want ErrFinished", err)
	}
	if _, err := r.Cancel("nope"); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("cancel an unknown job: %v, want ErrNotFound", err)
	}
}

func TestParentContextCancels(t *testing.T) {
	r := jobs.New(jobs.Options{})
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	j, _ := r.Start(ctx, jobs.Spec{Kind: "x"}, blocker(nil))
	cancel()
	if s := wait(t, j); s.State != jobs.Cancelled {
		t.Fatalf("state %s, want cancelled", s.State)
	}
}

func TestCloseCancelsRunningJobs(t *testing.T) {
	r := jobs.New(jobs.Options{})
	j, _ := r.Start(context.Background(), jobs.Spec{Kind: "x"}, blocker(nil))
	r.Close()
	if s := j.Snapshot(); s.State != jobs.Cancelled {
		t.Fatalf("state after Close: %s, want cancelled", s.State)
	}
	if _, err := r.Start(context.Background(), jobs.Spec{Kind: "x"}, blocker(nil)); !errors.Is(err, jobs.ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
}

func TestFinishedJobsAreForgotten(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	r := jobs.New(jobs.Options{Keep: time.Minute, MaxFinished: 2, Now: clock})
	defer r.Close()

	var ids []string
	for i := 0; i < 3; i++ {
		j, _ := r.Start(context.Background(), jobs.Spec{Kind: "x"}, func(context.Context, *jobs.Job) (any, error) { return nil, nil })
		wait(t, j)
		ids = append(ids, j.ID())
		advance(time.Second)
	}
	if _, err := r.Get(ids[0]); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("oldest beyond MaxFinished: %v, want ErrNotFound", err)
	}
	if _, err := r.Get(ids[2]); err != nil {
		t.Fatalf("newest: %v", err)
	}
	running, _ := r.Start(context.Background(), jobs.Spec{Kind: "x"}, blocker(nil))
	advance(2 * time.Minute)
	if got := len(r.List()); got != 1 {
		t.Fatalf("after Keep, %d jobs listed; want only the running one", got)
	}
	if _, err := r.Get(running.ID()); err != nil {
		t.Fatalf("a running job is never forgotten: %v", err)
	}
	running.Cancel()
	wait(t, running)
}

func TestSubscribeSeesStartThenEnd(t *testing.T) {
	r := jobs.New(jobs.Options{})
	defer r.Close()
	ch, unsubscribe := r.Subscribe()
	defer unsubscribe()
	j, _ := r.Start(context.Background(), jobs.Spec{Kind: "x"}, func(ctx context.Context, j *jobs.Job) (any, error) {
		j.SetTotal(1)
		j.Add(1)
		return nil, nil
	})
	wait(t, j)
	var states []jobs.State
	timeout := time.After(5 * time.Second)
	for len(states) == 0 || states[len(states)-1] == jobs.Running {
		select {
		case s := <-ch:
			if s.ID != j.ID() {
				t.Fatalf("snapshot of another job %s", s.ID)
			}
			states = append(states, s.State)
		case <-timeout:
			t.Fatalf("states so far %v", states)
		}
	}
	if states[0] != jobs.Running || states[len(states)-1] != jobs.Done {
		t.Fatalf("states %v: want running first and done last", states)
	}
}

func TestSlowSubscriberIsDropped(t *testing.T) {
	r := jobs.New(jobs.Options{})
	defer r.Close()
	ch, unsubscribe := r.Subscribe()
	defer unsubscribe()
	for i := 0; i < 100; i++ { // two snapshots per job: more than the buffer
		j, _ := r.Start(context.Background(), jobs.Spec{Kind: "x"}, func(context.Context, *jobs.Job) (any, error) { return nil, nil })
		wait(t, j)
	}
	n := 0
	for range ch {
		n++
	}
	if n == 0 || n >= 200 {
		t.Fatalf("received %d snapshots before being dropped", n)
	}
}

func TestLimiterBoundsPerKey(t *testing.T) {
	const perKey = 3
	l := jobs.NewLimiter(perKey)
	var mu sync.Mutex
	running, peak := map[string]int{}, map[string]int{}
	// The first calls hold their slots until both keys have perKey
	// running at once, so the peak does not depend on scheduling; a
	// limiter that let a fourth call in would show it.
	full := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{})}
	release := make(chan struct{})
	fullA, fullB := full["a"], full["b"]
	go func() {
		<-fullA
		<-fullB
		close(release)
	}()
	for i := 0; i < 60; i++ {
		key := []string{"a", "b"}[i%2]
		err := l.Go(context.Background(), key, func() {
			mu.Lock()
			running[key]++
			peak[key] = max(peak[key], running[key])
			if running[key] == perKey && full[key] != nil {
				close(full[key])
				full[key] = nil
			}
			mu.Unlock()
			<-release
			mu.Lock()
			running[key]--
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	l.Wait()
	for _, k := range []string{"a", "b"} {
		if peak[k] != perKey {
			t.Fatalf("key %s peaked at %d concurrent calls, want %d", k, peak[k], perKey)
		}
	}
}

func TestLimiterStopsWithContext(t *testing.T) {
	l := jobs.NewLimiter(1)
	release := make(chan struct{})
	var ran atomic.Int32
	l.Go(context.Background(), "k", func() { <-release; ran.Add(1) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Go(ctx, "k", func() { ran.Add(1) }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Go on a full key with an ending context: %v", err)
	}
	close(release)
	l.Wait()
	if got := ran.Load(); got != 1 {
		t.Fatalf("%d functions ran, want 1", got)
	}
}

// TestThrottledProgressIsSentLater: a burst of progress inside one
// throttle interval still reaches subscribers while the job runs on, so a
// job that pauses after the burst does not show stale counts.
func TestThrottledProgressIsSentLater(t *testing.T) {
	r := jobs.New(jobs.Options{})
	defer r.Close()
	ch, unsubscribe := r.Subscribe()
	defer unsubscribe()
	release := make(chan struct{})
	j, err := r.Start(context.Background(), jobs.Spec{Kind: "x"}, func(ctx context.Context, j *jobs.Job) (any, error) {
		j.SetTotal(3)
		for i := 0; i < 3; i++ {
			j.Add(1)
		}
		<-release
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { close(release); wait(t, j) }()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case s := <-ch:
			if s.State != jobs.Running {
				t.Fatalf("job ended while held: %+v", s)
			}
			if s.Done == 3 && s.Total == 3 {
				return
			}
		case <-timeout:
			t.Fatal("the last progress of a paused job never reached the subscriber")
		}
	}
}

// TestSnapshotsArriveInOrder: many workers report at once; a subscriber
// sees done never go back and nothing after the final snapshot.
func TestSnapshotsArriveInOrder(t *testing.T) {
	r := jobs.New(jobs.Options{})
	defer r.Close()
	ch, unsubscribe := r.Subscribe()
	defer unsubscribe()
	const workers, each = 8, 2000
	j, err := r.Start(context.Background(), jobs.Spec{Kind: "x"}, func(ctx context.Context, j *jobs.Job) (any, error) {
		j.SetTotal(workers * each)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					j.Add(1)
				}
			}()
		}
		wg.Wait()
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, j)
	var last jobs.Snapshot
	timeout := time.After(5 * time.Second)
	for last.State == "" || last.State == jobs.Running {
		select {
		case s := <-ch:
			if s.Done < last.Done {
				t.Fatalf("done went from %d back to %d", last.Done, s.Done)
			}
			last = s
		case <-timeout:
			t.Fatalf("no final snapshot; last %+v", last)
		}
	}
	if last.State != jobs.Done || last.Done != workers*each {
		t.Fatalf("final snapshot %+v", last)
	}
	select {
	case s, ok := <-ch:
		if ok && s.State == jobs.Running {
			t.Fatalf("a running snapshot after the final one: %+v", s)
		}
	default:
	}
}
