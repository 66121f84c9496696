// Package lru is a least-recently-used cache whose entries have costs (the
// bytes they hold) and whose bound is on the sum of the costs. It is what
// backends/memory and backends/tiered evict by.
//
// A Cache is not safe for concurrent access: its users hold their own
// lock. Peek, Len, Cost and All change nothing, so callers that only
// call those may share a read lock.
package lru

import (
	"iter"
	"sync/atomic"
)

// Cache holds values by key, most recently used first.
type Cache[K comparable, V any] struct {
	maxCost  int64 // 0: unbounded
	onRemove func(K, V)
	items    map[K]*node[K, V]
	root     node[K, V] // sentinel of a circular list: root.next is the most recently used
	cost     int64      // sum of the costs of items
	// evicted counts the values Add pushed out to fit the bound. It is
	// atomic so that a scrape reads it without its user's lock.
	evicted atomic.Int64
}

type node[K comparable, V any] struct {
	key        K
	value      V
	cost       int64
	prev, next *node[K, V]
}

// New returns an empty cache holding values of at most maxCost in all (0:
// unbounded). onRemove, if not nil, is called with every value that leaves
// the cache, whether evicted, replaced, removed or cleared, after it has
// left.
func New[K comparable, V any](maxCost int64, onRemove func(K, V)) *Cache[K, V] {
	c := &Cache[K, V]{maxCost: maxCost, onRemove: onRemove, items: map[K]*node[K, V]{}}
	c.root.next, c.root.prev = &c.root, &c.root
	return c
}

// Add stores v under key as the most recently used value, replacing any
// value under key, then evicts least recently used values until the costs
// fit the bound. A value that alone costs more than the bound is not
// stored (the value it would replace is removed all the same); Add then
// reports false.
func (c *Cache[K, V]) Add(key K, v V, cost int64) bool {
	if old, ok := c.items[key]; ok {
		c.removeNode(old)
	}
	if c.maxCost > 0 && cost > c.maxCost {
		return false
	}
	n := &node[K, V]{key: key, value: v, cost: cost}
	c.items[key] = n
	c.pushFront(n)
	c.cost += cost
	for c.maxCost > 0 && c.cost > c.maxCost {
		c.removeNode(c.root.prev) // never n: it alone fits
		c.evicted.Add(1)
	}
	return true
}

// Get returns the value under key and marks it the most recently used.
func (c *Cache[K, V]) Get(key K) (v V, ok bool) {
	n, ok := c.items[key]
	if !ok {
		return v, false
	}
	if c.root.next != n {
		c.unlink(n)
		c.pushFront(n)
	}
	return n.value, true
}

// Peek returns the value under key without marking it used.
func (c *Cache[K, V]) Peek(key K) (v V, ok bool) {
	n, ok := c.items[key]
	if !ok {
		return v, false
	}
	return n.value, true
}

// Remove drops the value under key and reports whether there was one.
func (c *Cache[K, V]) Remove(key K) bool {
	n, ok := c.items[key]
	if ok {
		c.removeNode(n)
	}
	return ok
}

// RemoveFunc drops every value that drop returns true for and returns how
// many it dropped.
func (c *Cache[K, V]) RemoveFunc(drop func(K, V) bool) int {
	removed := 0
	for n := c.root.next; n != &c.root; {
		next := n.next
		if drop(n.key, n.value) {
			c.removeNode(n)
			removed++
		}
		n = next
	}
	return removed
}

// Clear drops every value.
func (c *Cache[K, V]) Clear() {
	c.RemoveFunc(func(K, V) bool { return true })
}

// All yields every key and value, most recently used first. The cache
// must not change during the iteration.
func (c *Cache[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for n := c.root.next; n != &c.root; n = n.next {
			if !yield(n.key, n.value) {
				return
			}
		}
	}
}

// Evictions returns how many values Add has evicted to fit the bound
// (not those replaced, removed or cleared). Unlike the other methods it
// may be called concurrently with anything.
func (c *Cache[K, V]) Evictions() int64 { return c.evicted.Load() }

// Len returns the number of values held.
func (c *Cache[K, V]) Len() int { return len(c.items) }

// Cost returns the sum of the costs of the values held.
func (c *Cache[K, V]) Cost() int64 { return c.cost }

func (c *Cache[K, V]) removeNode(n *node[K, V]) {
	c.unlink(n)
	delete(c.items, n.key)
	c.cost -= n.cost
	if c.onRemove != nil {
		c.onRemove(n.key, n.value)
	}
}

func (c *Cache[K, V]) unlink(n *node[K, V]) {
	n.prev.next = n.next
	n.next.prev = n.prev
}

func (c *Cache[K, V]) pushFront(n *node[K, V]) {
	n.prev = &c.root
	n.next = c.root.next
	n.next.prev = n
	c.root.next = n
}
