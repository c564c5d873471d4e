package pbzip2

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestWalk checks the laned walk against one chain on links that form one
// cycle (every valid block) and several (a corrupt one), and that it
// leaves tt as it found it.
func TestWalk(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var w walker
	for _, n := range []int{1, 100, walkMinBlock - 1, walkMinBlock, 50000, 300001, maxBlock} {
		for _, cycles := range []int{1, 2, 7} {
			perm := r.Perm(n)
			tt := make([]uint32, n)
			// Link perm's elements into `cycles` cycles of about equal size.
			for c := range cycles {
				lo, hi := c*n/cycles, (c+1)*n/cycles
				for i := lo; i < hi; i++ {
					next := i + 1
					if next == hi {
						next = lo
					}
					tt[perm[i]] = uint32(perm[next])<<8 | uint32(r.IntN(256))
				}
			}
			orig := slices.Clone(tt)
			origPtr := r.IntN(n)
			want := make([]byte, n)
			walkOne(tt, origPtr, want)
			got := make([]byte, n)
			w.walk(tt, origPtr, got)
			if !bytes.Equal(got, want) {
				t.Fatalf("n %d, %d cycles: the walk differs from one chain's", n, cycles)
			}
			if !slices.Equal(tt, orig) {
				t.Fatalf("n %d, %d cycles: tt changed", n, cycles)
			}
		}
	}
}

// TestWalkUneven walks one cycle that visits every pivot row first, so
// that one segment holds nearly the whole block: more than a lane has
// room for, which sends the block to one chain.
func TestWalkUneven(t *testing.T) {
	n := 100000
	r := rand.New(rand.NewPCG(11, 12))
	var order []int // rows in walk order: the pivots, then the rest
	isPivot := make([]bool, n)
	for k := range walkPivots {
		isPivot[k*n/walkPivots] = true
		order = append(order, k*n/walkPivots)
	}
	for _, row := range r.Perm(n) {
		if !isPivot[row] {
			order = append(order, row)
		}
	}
	tt := make([]uint32, n)
	for i, row := range order {
		tt[row] = uint32(order[(i+1)%n])<<8 | uint32(r.IntN(256))
	}
	origPtr := order[0]
	want := make([]byte, n)
	walkOne(tt, origPtr, want)
	got := make([]byte, n)
	var w walker
	w.walk(tt, origPtr, got)
	if !bytes.Equal(got, want) {
		t.Fatal("the walk differs from one chain's")
	}
}
