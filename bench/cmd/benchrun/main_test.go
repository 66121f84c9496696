package main

import (
	"io"
	"testing"
)

func TestLoadConfigLeaveOutVariants(t *testing.T) {
	env := func(string) string { return "" }
	c, err := loadConfig(nil, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.No1CPU || c.NoFloor {
		t.Fatalf("default: No1CPU %v, NoFloor %v; cachegate-sqlite-1cpu and go-floor should be measured", c.No1CPU, c.NoFloor)
	}
	c, err = loadConfig([]string{"-quick", "-no-1cpu", "-no-floor"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.No1CPU || !c.NoFloor || c.Rounds != 1 {
		t.Fatalf("-quick -no-1cpu -no-floor: No1CPU %v, NoFloor %v, rounds %d; want true, true, 1", c.No1CPU, c.NoFloor, c.Rounds)
	}
}

func TestLiveFullLeavesOutHitsOnly(t *testing.T) {
	b := &bench{targets: []*target{
		{name: "upstream"},
		{name: "cachegate-sqlite", cached: true},
		{name: gw1CPU, cached: true, hitsOnly: true},
		{name: "cachegate-memory", cached: true, skip: "SKIPPED: test"},
	}}
	var live, full []string
	for _, t := range b.live() {
		live = append(live, t.name)
	}
	for _, t := range b.liveFull() {
		full = append(full, t.name)
	}
	if len(live) != 3 || live[2] != gw1CPU {
		t.Fatalf("live = %v, want upstream, cachegate-sqlite, %s", live, gw1CPU)
	}
	if len(full) != 2 || full[1] != "cachegate-sqlite" {
		t.Fatalf("liveFull = %v, want upstream, cachegate-sqlite", full)
	}
}
