package generate

import (
	"container/heap"
	"sort"
)

// order arranges ops so that applying them in place, on a target that
// starts as a copy of the old image, never reads a block an earlier
// operation overwrote. An operation that reads block b must run before the
// operation that writes b: a read-before-write graph, sorted
// topologically. A cycle is broken by turning its cheapest operation (the
// one whose data grows least) into a full one, which reads nothing; full
// operations can go anywhere. Ties go to the lower destination block, so
// the order is deterministic.
func order(ops []*op, nBlocks uint64, makeFull func(*op) error) ([]*op, error) {
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].dstStart < ops[j].dstStart })
	writer := make([]int32, nBlocks)
	for i := range writer {
		writer[i] = -1
	}
	for i, o := range ops {
		for b := o.dstStart; b < o.dstStart+o.dstBlocks; b++ {
			writer[b] = int32(i)
		}
	}
	// succ[a] lists the ops that must wait for a (a reads what they write).
	edges := func(i int) []int {
		seen := map[int]bool{}
		var out []int
		for _, e := range ops[i].src {
			for b := e.GetStartBlock(); b < e.GetStartBlock()+e.GetNumBlocks(); b++ {
				if w := int(writer[b]); w >= 0 && w != i && !seen[w] {
					seen[w] = true
					out = append(out, w)
				}
			}
		}
		sort.Ints(out)
		return out
	}
	succ := make([][]int, len(ops))
	indeg := make([]int, len(ops))
	for i := range ops {
		succ[i] = edges(i)
		for _, w := range succ[i] {
			indeg[w]++
		}
	}
	done := make([]bool, len(ops))
	var out []*op
	for len(out) < len(ops) {
		// Kahn's algorithm, lowest index first.
		h := &intHeap{}
		for i := range ops {
			if !done[i] && indeg[i] == 0 {
				heap.Push(h, i)
			}
		}
		for h.Len() > 0 {
			i := heap.Pop(h).(int)
			done[i] = true
			out = append(out, ops[i])
			for _, w := range succ[i] {
				indeg[w]--
				if indeg[w] == 0 {
					heap.Push(h, w)
				}
			}
		}
		if len(out) == len(ops) {
			break
		}
		// What remains holds cycles: in each strongly connected component
		// with more than one operation, make the cheapest one full.
		for _, comp := range sccs(succ, done) {
			if len(comp) < 2 {
				continue
			}
			cheap := comp[0]
			for _, i := range comp[1:] {
				if c, cc := ops[i].breakCost(), ops[cheap].breakCost(); c < cc || (c == cc && i < cheap) {
					cheap = i
				}
			}
			if err := makeFull(ops[cheap]); err != nil {
				return nil, err
			}
			for _, w := range succ[cheap] {
				indeg[w]--
			}
			succ[cheap] = nil
		}
	}
	return out, nil
}

// sccs returns the strongly connected components among the ops not done
// (Tarjan's algorithm, iterative, deterministic).
func sccs(succ [][]int, done []bool) [][]int {
	n := len(succ)
	index := make([]int, n)
	low := make([]int, n)
	on := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack, comp []int
	var out [][]int
	next := 0
	type frame struct{ v, e int }
	for root := 0; root < n; root++ {
		if done[root] || index[root] >= 0 {
			continue
		}
		call := []frame{{root, 0}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		on[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			if f.e < len(succ[f.v]) {
				w := succ[f.v][f.e]
				f.e++
				if done[w] {
					continue
				}
				if index[w] < 0 {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					on[w] = true
					call = append(call, frame{w, 0})
				} else if on[w] {
					low[f.v] = min(low[f.v], index[w])
				}
				continue
			}
			v := f.v
			call = call[:len(call)-1]
			if len(call) > 0 {
				p := call[len(call)-1].v
				low[p] = min(low[p], low[v])
			}
			if low[v] == index[v] {
				comp = nil
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					on[w] = false
					comp = append(comp, w)
					if w == v {
						break
					}
				}
				sort.Ints(comp)
				out = append(out, comp)
			}
		}
	}
	return out
}

type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
