package gateway_test

import (
	"testing"

	"github.com/cachegate/cachegate/gateway"
)

// A hub with a budget admits that many events until the next Refill,
// counts the rest, and admits every event once unlimited.
func TestHubBudget(t *testing.T) {
	var h gateway.Hub
	for range 5 {
		if !h.Admit() {
			t.Fatal("a hub without a budget refused an event")
		}
	}
	if got := h.Refill(3); got != 0 {
		t.Fatalf("first Refill reports %d refused, want 0", got)
	}
	admitted := 0
	for range 10 {
		if h.Admit() {
			admitted++
		}
	}
	if admitted != 3 {
		t.Fatalf("%d of 10 admitted with a budget of 3", admitted)
	}
	if got := h.Refill(3); got != 7 {
		t.Fatalf("Refill reports %d refused, want 7", got)
	}
	if !h.Admit() {
		t.Fatal("a refilled budget refused an event")
	}
	h.Unlimit()
	for range 10 {
		if !h.Admit() {
			t.Fatal("an unlimited hub refused an event")
		}
	}
}
