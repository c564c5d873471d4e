package generate

import (
	"container/heap"
	"runtime"
	"slices"
	"sort"
	"sync"
)

// order arranges ops so that applying them in place, on a target that
// starts as a copy of the old image, never reads a block an earlier
// operation overwrote. An operation that reads block b must run before the
// operation that writes b: a read-before-write graph, sorted
// topologically. Ties go to the lower destination block, so the order is
// deterministic.
//
// A cycle (a strongly connected component of the graph) is first merged
// into one operation, if merge accepts it: the client reads all of an
// operation's source before it writes, so one operation can do what a
// cycle of them cannot (typically files that swapped places). Otherwise
// its cheapest operation (the one whose data grows least) becomes a full
// one, which reads nothing and can go anywhere; until no cycle is left.
func order(ops []*op, nBlocks uint64, makeFull func(*op) error, merge func([]*op) (*op, error)) ([]*op, error) {
	for {
		out, merged, err := orderOnce(ops, nBlocks, makeFull, merge)
		if err != nil || merged == nil {
			return out, err
		}
		// Each merged component is replaced by its merged operation; then
		// everything is ordered again.
		next := ops[:0:0]
		for _, o := range ops {
			if m, ok := merged[o]; !ok {
				next = append(next, o)
			} else if m != nil {
				next = append(next, m)
				for k, v := range merged {
					if v == m {
						merged[k] = nil // added once
					}
				}
			}
		}
		ops = next
	}
}

// orderOnce orders ops. When there are cycles and merge accepts some of
// them, it returns instead which operation replaces each op merged;
// components merge refused are broken with makeFull, and not offered to
// merge again.
func orderOnce(ops []*op, nBlocks uint64, makeFull func(*op) error, merge func([]*op) (*op, error)) ([]*op, map[*op]*op, error) {
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].firstDst() < ops[j].firstDst() })
	writer := make([]int32, nBlocks)
	for i := range writer {
		writer[i] = -1
	}
	for i, o := range ops {
		for _, e := range o.dst {
			for b := e.GetStartBlock(); b < e.GetStartBlock()+e.GetNumBlocks(); b++ {
				writer[b] = int32(i)
			}
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
		// What remains holds cycles: each strongly connected component
		// with more than one operation is merged, or else its cheapest
		// operation made full.
		comps := sccs(succ, done)
		var offered [][]*op
		for _, comp := range comps {
			if len(comp) < 2 || slices.ContainsFunc(comp, func(i int) bool { return ops[i].noMerge }) {
				continue
			}
			members := make([]*op, len(comp))
			for k, i := range comp {
				members[k] = ops[i]
			}
			offered = append(offered, members)
		}
		// The components are independent: merged on several goroutines,
		// the results taken in component order.
		results := make([]*op, len(offered))
		errs := make([]error, len(offered))
		var wg sync.WaitGroup
		next := make(chan int)
		for range runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for c := range next {
					results[c], errs[c] = merge(offered[c])
				}
			}()
		}
		for c := range offered {
			next <- c
		}
		close(next)
		wg.Wait()
		merged := map[*op]*op{}
		for c, members := range offered {
			if errs[c] != nil {
				return nil, nil, errs[c]
			}
			for _, o := range members {
				if results[c] == nil {
					o.noMerge = true
				} else {
					merged[o] = results[c]
				}
			}
		}
		if len(merged) > 0 {
			return nil, merged, nil
		}
		for _, comp := range comps {
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
				return nil, nil, err
			}
			for _, w := range succ[cheap] {
				indeg[w]--
			}
			succ[cheap] = nil
		}
	}
	return out, nil, nil
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
