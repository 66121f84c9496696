package handlers_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/handlers"
	"github.com/gorilla/websocket"
)

// statsMessage is a stats message with what the overview reads.
type statsMessage struct {
	Type     string            `json:"type"`
	Stats    *gateway.Snapshot `json:"stats"`
	Samples  []gateway.Sample  `json:"samples"`
	History  bool              `json:"history"`
	Minute   *gateway.Window   `json:"minute"`
	Backends map[string]struct {
		Entries int64 `json:"entries"`
	} `json:"backends"`
}

func readStats(t *testing.T, conn *websocket.Conn) statsMessage {
	t.Helper()
	for {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("read /ws: %v", err)
		}
		var m statsMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		if m.Type == "stats" {
			return m
		}
	}
}

// TestEventsStatsCarrySamplesAndHistory: the first stats message after
// subscribing holds the server's history; later ones the samples taken
// since, each once; a client that reconnects gets the history again, so
// the page fills the gap.
func TestEventsStatsCarrySamplesAndHistory(t *testing.T) {
	e := newWSEnv(t, handlers.EventOptions{StatsInterval: 20 * time.Millisecond})
	conn := e.dial(nil)
	first := readStats(t, conn)
	if !first.History || len(first.Samples) == 0 || first.Minute == nil {
		t.Fatalf("first stats message: history %v, %d samples, minute %v; want the history the gateway took at start", first.History, len(first.Samples), first.Minute)
	}
	e.fetch("/x", "MISS")
	e.fetch("/x", "HIT")
	e.fetch("/x", "HIT")

	// The gateway samples once a second: read until a sample holds them.
	last := first.Samples[len(first.Samples)-1].Time
	var requests, hits int64
	for requests < 3 {
		m := readStats(t, conn)
		if m.History {
			t.Fatal("a later stats message carries the history again")
		}
		for _, s := range m.Samples {
			if !s.Time.After(last) {
				t.Fatalf("sample of %v sent twice or out of order (after %v)", s.Time, last)
			}
			last = s.Time
			requests += s.Total.Requests
			hits += s.Upstreams["up"].Hits
		}
		if m.Stats == nil || m.Minute == nil {
			t.Fatal("a stats message without the counters or the last minute")
		}
	}
	if requests != 3 || hits != 2 {
		t.Fatalf("samples counted %d requests and %d hits, want 3 and 2", requests, hits)
	}

	// A fresh connection (a reload, or a reconnect after a drop) gets the
	// whole history, the traffic above included.
	again := readStats(t, e.dial(nil))
	var total int64
	for _, s := range again.Samples {
		total += s.Total.Requests
	}
	if !again.History || total != 3 {
		t.Fatalf("reconnected: history %v with %d requests, want the history with 3", again.History, total)
	}
	if again.Minute.Requests != 3 || again.Minute.HitRatio < 0.66 {
		t.Fatalf("last minute %+v, want 3 requests at 2/3 hits", again.Minute)
	}
}
