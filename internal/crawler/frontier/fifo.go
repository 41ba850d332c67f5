package frontier

// fifo is a queue of items: a slice with a moving head, compacted when the
// dead prefix is as long as the live part, so that memory follows the
// queue's length, not its history.
type fifo struct {
	items []Item
	start int
}

func (q *fifo) len() int { return len(q.items) - q.start }

func (q *fifo) push(it Item) { q.items = append(q.items, it) }

func (q *fifo) head() Item { return q.items[q.start] }

func (q *fifo) pop() Item {
	it := q.items[q.start]
	q.items[q.start] = Item{}
	q.start++
	switch {
	case q.start == len(q.items):
		q.items, q.start = q.items[:0], 0
	case q.start >= 64 && q.start*2 >= len(q.items):
		n := copy(q.items, q.items[q.start:])
		clear(q.items[n:])
		q.items, q.start = q.items[:n], 0
	}
	return it
}

func (q *fifo) pushFront(it Item) {
	if q.start > 0 {
		q.start--
		q.items[q.start] = it
		return
	}
	q.items = append([]Item{it}, q.items...)
}

// drain removes and returns every item.
func (q *fifo) drain() []Item {
	out := append([]Item(nil), q.items[q.start:]...)
	*q = fifo{}
	return out
}

// removeHost removes and returns a host's items, keeping the others' order.
func (q *fifo) removeHost(host string) []Item {
	var out []Item
	kept := q.items[:q.start]
	for _, it := range q.items[q.start:] {
		if it.Host == host {
			out = append(out, it)
		} else {
			kept = append(kept, it)
		}
	}
	clear(q.items[len(kept):])
	q.items = kept
	if q.len() == 0 {
		q.items, q.start = q.items[:0], 0
	}
	return out
}
