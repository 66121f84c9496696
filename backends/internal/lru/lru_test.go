package lru_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/cachegate/cachegate/backends/internal/lru"
)

// keys returns the keys held, most recently used first.
func keys(c *lru.Cache[string, int]) []string {
	var out []string
	for k := range c.All() {
		out = append(out, k)
	}
	return out
}

func TestEvictsLeastRecentlyUsedByCost(t *testing.T) {
	var removed []string
	c := lru.New(10, func(k string, _ int) { removed = append(removed, k) })
	c.Add("a", 1, 4)
	c.Add("b", 2, 4)
	if _, ok := c.Get("a"); !ok { // b is now the least recently used
		t.Fatal("a is missing")
	}
	c.Add("c", 3, 4) // 12 > 10: b goes
	if got, want := keys(c), []string{"c", "a"}; !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	if !slices.Equal(removed, []string{"b"}) {
		t.Fatalf("removed %v, want [b]", removed)
	}
	if c.Cost() != 8 || c.Len() != 2 {
		t.Fatalf("cost %d, len %d; want 8, 2", c.Cost(), c.Len())
	}
}

func TestPeekDoesNotMarkUsed(t *testing.T) {
	c := lru.New[string, int](2, nil)
	c.Add("a", 1, 1)
	c.Add("b", 2, 1)
	if v, ok := c.Peek("a"); !ok || v != 1 {
		t.Fatalf("Peek(a) = %d, %v", v, ok)
	}
	c.Add("c", 3, 1)
	if _, ok := c.Peek("a"); ok {
		t.Fatal("a survived: Peek marked it used")
	}
}

func TestAddReplaces(t *testing.T) {
	var removed []int
	c := lru.New(10, func(_ string, v int) { removed = append(removed, v) })
	c.Add("a", 1, 6)
	c.Add("a", 2, 7) // 7 fits alone once the old value is gone
	if v, ok := c.Get("a"); !ok || v != 2 || c.Cost() != 7 || c.Len() != 1 {
		t.Fatalf("after replacing: %d, %v, cost %d, len %d", v, ok, c.Cost(), c.Len())
	}
	if !slices.Equal(removed, []int{1}) {
		t.Fatalf("removed %v, want the replaced value", removed)
	}
}

func TestTooCostlyIsNotStored(t *testing.T) {
	c := lru.New[string, int](10, nil)
	c.Add("small", 1, 5)
	c.Add("big", 2, 3)
	if c.Add("big", 3, 11) {
		t.Fatal("Add stored a value costing more than the bound")
	}
	if _, ok := c.Peek("big"); ok {
		t.Fatal("the value it replaced is still there")
	}
	if got := keys(c); !slices.Equal(got, []string{"small"}) {
		t.Fatalf("keys %v: a value too costly evicted others", got)
	}
}

func TestUnbounded(t *testing.T) {
	c := lru.New[string, int](0, nil)
	for i := range 1000 {
		c.Add(fmt.Sprint(i), i, 1<<40)
	}
	if c.Len() != 1000 {
		t.Fatalf("len %d, want 1000", c.Len())
	}
}

func TestRemoveAndRemoveFunc(t *testing.T) {
	var removed int
	c := lru.New(0, func(string, int) { removed++ })
	for i := range 10 {
		c.Add(fmt.Sprint(i), i, int64(i))
	}
	if !c.Remove("3") || c.Remove("3") {
		t.Fatal("Remove reports wrongly")
	}
	if n := c.RemoveFunc(func(_ string, v int) bool { return v%2 == 0 }); n != 5 {
		t.Fatalf("RemoveFunc removed %d, want 5", n)
	}
	if got, want := keys(c), []string{"9", "7", "5", "1"}; !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	if c.Cost() != 9+7+5+1 {
		t.Fatalf("cost %d", c.Cost())
	}
	c.Clear()
	if c.Len() != 0 || c.Cost() != 0 || removed != 10 {
		t.Fatalf("after Clear: len %d, cost %d, %d removed", c.Len(), c.Cost(), removed)
	}
}

// Evictions counts what Add pushed out, not what was replaced, removed
// or cleared.
func TestEvictionsCountsOnlyEvictions(t *testing.T) {
	c := lru.New[string, int](10, nil)
	c.Add("a", 1, 4)
	c.Add("a", 2, 4) // replaced
	c.Add("b", 3, 4)
	c.Remove("b")
	c.Add("b", 3, 4)
	if n := c.Evictions(); n != 0 {
		t.Fatalf("evictions %d after replace and remove, want 0", n)
	}
	c.Add("c", 4, 8) // 16 > 10: a and b go
	if n := c.Evictions(); n != 2 {
		t.Fatalf("evictions %d, want 2", n)
	}
	c.Clear()
	if n := c.Evictions(); n != 2 {
		t.Fatalf("evictions %d after Clear, want still 2", n)
	}
}
