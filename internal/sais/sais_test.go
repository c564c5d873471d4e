package sais

import (
	"bytes"
	"math/rand/v2"
	"sort"
	"testing"
)

// sais against a plain comparison sort, on short texts over small
// alphabets (many repeats, so reduced problems recurse).
func TestSAIS(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var r Sorter
	for range 5000 {
		n := 1 + rng.IntN(40)
		s := make([]byte, n)
		alpha := 1 + rng.IntN(4)
		for i := range s {
			s[i] = byte('a' + rng.IntN(alpha))
		}
		sa := make([]int32, n)
		r.Sort(s, sa, nil, -1)
		want := make([]int32, n)
		for i := range want {
			want[i] = int32(i)
		}
		sort.Slice(want, func(a, b int) bool { return bytes.Compare(s[want[a]:], s[want[b]:]) < 0 })
		for i := range sa {
			if sa[i] != want[i] {
				t.Fatalf("%q: %v, want %v", s, sa, want)
			}
		}
	}
}

// Sort's transform is the byte before each suffix, cyclically, and it
// reports where the wanted suffix sorts.
func TestSortBWT(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var r Sorter
	for range 500 {
		n := 1 + rng.IntN(300)
		s := make([]byte, n)
		for i := range s {
			s[i] = byte(rng.IntN(3))
		}
		sa := make([]int32, n)
		bwt := make([]byte, n)
		want := int32(rng.IntN(n))
		at := r.Sort(s, sa, bwt, want)
		if at < 0 || sa[at] != want {
			t.Fatalf("%v: suffix %d reported at %d", s, want, at)
		}
		for i, p := range sa {
			if bwt[i] != s[(int(p)+n-1)%n] {
				t.Fatalf("%v: transform differs at %d", s, i)
			}
		}
	}
}

// New agrees with a comparison sort on larger random and repetitive texts
// (one Sorter's buffers reused across sizes).
func TestNew(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 2, 1000, 70000} {
		for _, alpha := range []int{1, 2, 256} {
			s := make([]byte, n)
			for i := range s {
				s[i] = byte(rng.IntN(alpha))
			}
			sa, err := New(s)
			if err != nil {
				t.Fatal(err)
			}
			if len(sa) != n {
				t.Fatalf("n=%d: %d entries", n, len(sa))
			}
			for i := 1; i < n; i++ {
				if bytes.Compare(s[sa[i-1]:], s[sa[i]:]) >= 0 {
					t.Fatalf("n=%d alphabet %d: out of order at %d", n, alpha, i)
				}
			}
		}
	}
}
