package pbzip2

import (
	"encoding/binary"
	"math/bits"

	"github.com/augen-project/augen/internal/sais"
)

// Sorting a block's cyclic rotations with a suffix sort.
//
// A block that is not a repetition u^k (k ≥ 2) of a shorter string has
// distinct rotations, so their sorted order is unique and any correct
// method gives libbzip2's. Rotate the block to start at its least
// rotation: the result L is a Lyndon word, and for a Lyndon word the order
// of the rotations equals the order of the suffixes (a suffix that is a
// prefix of another sorts first, and so does its rotation, because what
// follows it, L itself, is smaller than any proper suffix of L and not a
// prefix of one). The suffixes are sorted by SA-IS (package sais) in
// linear time, with its buffers kept from block to block.

// rotSorter holds the buffers of the suffix sort.
type rotSorter struct {
	rot []byte  // the block rotated to its least rotation
	sa  []int32 // its suffix array
	dbl []byte  // the block twice, for leastRotation
	s   sais.Sorter
}

// sort writes the Burrows–Wheeler transform of block (the last byte of
// each rotation, rotations in sorted order) to bwt and returns where the
// block's own rotation sorts. It returns ok = false, writing nothing, when
// the block is periodic: the order among its equal rotations is libbzip2's
// algorithm's, not a property of the data.
func (r *rotSorter) sort(block, bwt []byte) (origPtr int, ok bool) {
	n := len(block)
	if n == 1 {
		bwt[0] = block[0]
		return 0, true
	}
	if cap(r.dbl) < 2*n {
		r.dbl = make([]byte, 2*n)
	}
	m, periodic := leastRotation(block, r.dbl)
	if periodic {
		return 0, false
	}
	if cap(r.rot) < n {
		r.rot = make([]byte, n)
		r.sa = make([]int32, n)
	}
	rot, sa := r.rot[:n], r.sa[:n]
	copy(rot, block[m:])
	copy(rot[n-m:], block[:m])
	// The block's rotation starts at n-m in rot (at 0 when m is 0); the
	// last pass of the sort notes where it lands.
	want := int32(n - m)
	if m == 0 {
		want = 0
	}
	if orig := r.s.Sort(rot, sa, bwt, want); orig >= 0 {
		return orig, true
	}
	panic("pbzip2: the block's rotation is missing from the suffix array")
}

// leastRotation returns the start of the lexicographically least rotation
// of s and whether s is periodic, by the two-pointer method: i and j are
// candidates, and a mismatch after k equal bytes rules out k+1 starts
// after the larger one. Two candidates equal for n bytes mean s = u^k.
// dbl holds s twice, so that equal stretches are skipped 8 bytes at a time.
func leastRotation(s, dbl []byte) (int, bool) {
	n := len(s)
	dbl = dbl[:2*n]
	copy(dbl, s)
	copy(dbl[n:], s)
	i, j := 0, 1
	for i < n && j < n {
		// Most candidates lose on their first byte.
		if a, b := dbl[i], dbl[j]; a != b {
			if a > b {
				i++
			} else {
				j++
			}
			if i == j {
				j++
			}
			continue
		}
		k := commonPrefix(dbl[i:i+n], dbl[j:j+n])
		if k == n {
			return min(i, j), true
		}
		if dbl[i+k] > dbl[j+k] {
			i += k + 1
		} else {
			j += k + 1
		}
		if i == j {
			j++
		}
	}
	return min(i, j), false
}

// commonPrefix returns the length of the common prefix of a and b (of
// equal length).
func commonPrefix(a, b []byte) int {
	k := 0
	for ; k+8 <= len(a); k += 8 {
		x := binary.LittleEndian.Uint64(a[k:]) ^ binary.LittleEndian.Uint64(b[k:])
		if x != 0 {
			return k + bits.TrailingZeros64(x)/8
		}
	}
	for ; k < len(a) && a[k] == b[k]; k++ {
	}
	return k
}
