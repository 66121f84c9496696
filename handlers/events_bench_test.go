//go:build unix

package handlers_test

import (
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/cachegate/cachegate/handlers"
)

// wsProcessCPU returns the user and system CPU time this process has used.
func wsProcessCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHitsWithEventClients measures cache hits through the gateway
// with no /ws client, with 50 on the default topics (what the overview
// page takes), and with 50 that also take every request event.
func BenchmarkHitsWithEventClients(b *testing.B) {
	for _, bc := range []struct {
		name    string
		clients int
		topics  []string
	}{
		{"none", 0, nil},
		{"50_jobs_stats", 50, []string{"jobs", "stats"}},
		{"50_all", 50, []string{"jobs", "stats", "requests"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newWSEnv(b, handlers.EventOptions{})
			e.fetch("/bench", "MISS")
			for i := 0; i < bc.clients; i++ {
				conn := e.dial(nil)
				wsSubscribe(b, conn, bc.topics...)
				go func() {
					for {
						if _, _, err := conn.ReadMessage(); err != nil {
							return
						}
					}
				}()
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			url := e.srv.URL + "/fetch/up/bench"
			cpu0 := wsProcessCPU(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
			b.StopTimer()
			// Wall time on a shared machine says little; the CPU the
			// process spent per hit (gateway, clients and sockets) is
			// what the clients cost.
			b.ReportMetric(float64(wsProcessCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(e.api.EventCounts().Dropped), "dropped")
		})
	}
}
