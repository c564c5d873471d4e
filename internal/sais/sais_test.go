package sais

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

func text(rng *rand.Rand, n, alpha int) []byte {
	s := make([]byte, n)
	for i := range s {
		s[i] = byte(rng.IntN(alpha))
	}
	return s
}

// Sort against a plain comparison sort, on short texts over small
// alphabets (many repeats, so reduced problems recurse), with one Sorter's
// buffers reused; its transform is the byte before each suffix, cyclically,
// and it reports where the wanted suffix sorts.
func TestSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var r Sorter
	for range 5000 {
		n := 1 + rng.IntN(300)
		s := text(rng, n, 1+rng.IntN(4))
		sa, bwt := make([]int32, n), make([]byte, n)
		want := int32(rng.IntN(n))
		at := r.Sort(s, sa, bwt, want)
		order := make([]int32, n)
		for i := range order {
			order[i] = int32(i)
		}
		slices.SortFunc(order, func(a, b int32) int { return bytes.Compare(s[a:], s[b:]) })
		if !slices.Equal(sa, order) {
			t.Fatalf("%v: %v, want %v", s, sa, order)
		}
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

// New sorts larger random and repetitive texts.
func TestNew(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 2, 1000, 70000} {
		for _, alpha := range []int{1, 2, 256} {
			s := text(rng, n, alpha)
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
