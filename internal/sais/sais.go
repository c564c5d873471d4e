// Package sais builds suffix arrays in linear time with SA-IS (Nong, Zhang
// and Chan, 2009). Two users need one: bsdiff, to find the longest match of
// new data in old, and the bzip2 encoder, whose Burrows–Wheeler transform
// is a suffix sort of a rotated block. The standard library's
// index/suffixarray does not export its array; reading it back through
// Index.Write cost a quarter of the sort, and this sort is faster anyway.
package sais

import "errors"

// MaxLen is the longest text Sort accepts: entries carry a flag in bit 30.
const MaxLen = lmsFlag

// Sorter holds the buffers of the sort, kept from one call to the next.
// A Sorter is not safe for concurrent use.
type Sorter struct {
	pos []int32 // LMS positions, level after level
	cnt []int32 // symbol counts
	bkt []int32 // bucket heads or tails

	want int32 // the suffix whose place the last pass reports
	orig int   // its place
}

// Sort writes the suffix array of t to sa (the start offsets of its
// suffixes in sorted order; a suffix that is a prefix of another sorts
// first). len(sa) must be len(t), at most MaxLen. When bwt is not nil
// (len(t) bytes) it also receives the byte before each suffix, cyclically,
// and Sort returns where suffix want sorts; else it returns -1.
func (r *Sorter) Sort(t []byte, sa []int32, bwt []byte, want int32) int {
	n := len(t)
	if len(sa) != n || n > MaxLen || (bwt != nil && len(bwt) != n) {
		panic("sais: bad lengths")
	}
	if cap(r.pos) < n {
		// Each level's LMS positions: at most n/2, then half as many.
		r.pos = make([]int32, n)
	}
	if cap(r.cnt) < 256 {
		r.cnt, r.bkt = make([]int32, 256), make([]int32, 256)
	}
	r.want, r.orig = want, -1
	if n == 1 && bwt != nil {
		bwt[0] = t[0]
		r.orig = 0
	}
	sais(t, sa, 256, r, bwt, 0)
	return r.orig
}

// ErrTooLong is New's error for a text over MaxLen bytes.
var ErrTooLong = errors.New("sais: text longer than 1 GiB")

// New returns the suffix array of t.
func New(t []byte) ([]int32, error) {
	if len(t) > MaxLen {
		return nil, ErrTooLong
	}
	sa := make([]int32, len(t))
	var r Sorter
	r.Sort(t, sa, nil, -1)
	return sa, nil
}

// symbol is a text alphabet for sais: bytes at the top level, names in the
// reduced problems.
type symbol interface{ ~byte | ~int32 }

// sais writes the suffix array of t (symbols below k; the end of t sorts
// before every symbol) to sa, and when bwt is not nil the symbol before
// each suffix, cyclically, to bwt (its last pass reads it anyway).
//
// Suffix types are never stored: a right-to-left scan knows each
// position's type from the next one's (S-type: t[i] < t[i+1], or equal and
// i+1 S-type; the last position is L-type), and the inducing passes get by
// without them (see induce).
func sais[T symbol](t []T, sa []int32, k int, r *Sorter, bwt []byte, posOff int) {
	n := len(t)
	switch n {
	case 0:
		return
	case 1:
		sa[0] = 0
		return
	}
	cnt, bkt := r.cnt[:k], r.bkt[:k]
	counts(t, cnt)

	// Stage 1: sort the LMS substrings by placing the LMS positions (an
	// S-type position after an L-type one) at their bucket tails and
	// inducing. The positions are also kept, in descending order, for
	// the steps after the recursion (each level has its own part of
	// r.pos).
	for i := range sa {
		sa[i] = -1
	}
	tails(cnt, bkt)
	pos := r.pos[posOff:]
	n1 := 0
	// Every position is written to pos and kept when it is LMS, without a
	// branch: which positions are LMS is a coin flip on binary data.
	// pos has room for n entries, so the write one past the kept ones is
	// in bounds.
	for i, sNext := n-2, uint8(0); i >= 0; i-- {
		sCur := sType(t[i], t[i+1], sNext)
		pos[n1] = int32(i + 1)
		n1 += int(sNext &^ sCur)
		sNext = sCur
	}
	pos = pos[:n1]
	for _, p := range pos {
		c := t[p]
		bkt[c]--
		sa[bkt[c]] = p
	}
	induce(t, sa, cnt, bkt, nil, true, r)

	// Gather the sorted LMS positions, marked by induce, at the front.
	j := 0
	for _, p := range sa {
		if p >= lmsFlag {
			sa[j] = p &^ lmsFlag
			j++
		}
	}
	// Each LMS substring's length (to the next LMS position, inclusive;
	// the last one runs into the end and is unique), at n1 + p/2: LMS
	// positions are at least 2 apart.
	next := int32(n)
	for _, p := range pos {
		sa[n1+int(p>>1)] = next - p + 1
		next = p
	}
	// Name the substrings in sorted order; equal ones (same length, same
	// symbols, hence same types) get equal names.
	name := int32(-1)
	prev, prevLen := 0, 0
	for i := range n1 {
		p := int(sa[i])
		plen := int(sa[n1+p>>1])
		if i == 0 || plen != prevLen || p+plen > n || prev+plen > n || !equalRun(t[p:p+plen], t[prev:prev+plen]) {
			name++
		}
		prev, prevLen = p, plen
		sa[n1+p>>1] = name
	}
	names := int(name) + 1
	// The reduced string: the names in text order, at the end of sa.
	// Writing from the right never overwrites a name still to be read.
	s1, sa1 := sa[n-n1:], sa[:n1]
	for k, p := range pos { // k-th from the right
		s1[n1-1-k] = sa[n1+int(p>>1)]
	}

	// Stage 2: sort the LMS suffixes, recursively when names repeat.
	if names < n1 {
		// The recursion uses the shared count buffers, grown to its
		// alphabet (this level keeps the slices it has).
		if cap(r.cnt) < names {
			r.cnt, r.bkt = make([]int32, names), make([]int32, names)
		}
		var saved [256]int32
		if k <= 256 {
			copy(saved[:], cnt)
		}
		sais(s1, sa1, names, r, nil, posOff+n1)
		if k <= 256 {
			copy(cnt, saved[:k])
		} else {
			counts(t, cnt)
		}
	} else {
		for i, c := range s1 {
			sa1[c] = int32(i)
		}
	}
	// Map the reduced suffixes back to LMS positions.
	for i, x := range sa1 {
		sa1[i] = pos[n1-1-int(x)]
	}
	for i := n1; i < n; i++ {
		sa[i] = -1
	}

	// Stage 3: place the sorted LMS suffixes at their bucket tails, in
	// order, and induce the rest.
	tails(cnt, bkt)
	for i := n1 - 1; i >= 0; i-- {
		p := sa[i]
		sa[i] = -1
		c := t[p]
		bkt[c]--
		sa[bkt[c]] = p
	}
	induce(t, sa, cnt, bkt, bwt, false, r)
}

// sType is the type of a position holding c0 followed by c1 whose
// successor has type sNext (1 for S-type), without branches: the
// comparisons are unpredictable on binary data.
func sType[T symbol](c0, c1 T, sNext uint8) uint8 {
	var lt, eq uint8
	if c0 < c1 {
		lt = 1
	}
	if c0 == c1 {
		eq = 1
	}
	return lt | eq&sNext
}

func equalRun[T symbol](a, b []T) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func counts[T symbol](t []T, cnt []int32) {
	clear(cnt)
	if len(cnt) > 256 {
		for _, c := range t {
			cnt[c]++
		}
		return
	}
	// Four histograms: runs of one symbol would otherwise make every
	// increment wait for the one before.
	var h [4][256]int32
	i := 0
	for ; i+4 <= len(t); i += 4 {
		h[0][byte(t[i])]++
		h[1][byte(t[i+1])]++
		h[2][byte(t[i+2])]++
		h[3][byte(t[i+3])]++
	}
	for ; i < len(t); i++ {
		h[0][byte(t[i])]++
	}
	for c := range cnt {
		cnt[c] = h[0][c] + h[1][c] + h[2][c] + h[3][c]
	}
}

func heads(cnt, bkt []int32) {
	sum := int32(0)
	for i, c := range cnt {
		bkt[i] = sum
		sum += c
	}
}

func tails(cnt, bkt []int32) {
	sum := int32(0)
	for i, c := range cnt {
		sum += c
		bkt[i] = sum
	}
}

// induce sorts the L-type suffixes from the S-type ones in sa (left to
// right, into bucket heads), then the S-type ones from the L-type ones
// (right to left, into bucket tails). The suffix at n-1 comes first: it
// follows the empty suffix, which sorts before all.
//
// Which entries induce their predecessor is decided when they are
// written, not when they are read (where it is a coin flip on binary
// data), and carried in the sign: in the left-to-right pass a positive
// entry induces its predecessor (an L-type position); an entry whose
// predecessor is S-type is stored complemented, and it is the
// right-to-left pass that induces from complemented entries (restoring
// them). Position 0 has no predecessor and is stored as is; -1 is empty.
// The suffixes placed before the call (LMS ones) have L-type predecessors.
//
// With bwt, the symbol before each suffix is written to bwt as the last
// pass reads it. With markLMS, LMS suffixes are stored with lmsFlag set,
// so that they can be gathered in order without reading the text.
func induce[T symbol](t []T, sa []int32, cnt, bkt []int32, bwt []byte, markLMS bool, r *Sorter) {
	n := len(t)
	heads(cnt, bkt)
	{
		v := int32(n - 1)
		c := t[v]
		if v > 0 && t[v-1] < c {
			v = ^v
		}
		sa[bkt[c]] = v
		bkt[c]++
	}
	// range reads each entry when it comes to it, after the writes of
	// the entries before.
	for _, p := range sa {
		if p <= 0 {
			continue
		}
		v := p - 1
		c0 := t[v]
		w := v
		if t[max(v-1, 0)] < c0 { // false for v = 0: t[0] is c0
			w = ^v
		}
		b := bkt[c0]
		sa[b] = w
		bkt[c0] = b + 1
	}
	tails(cnt, bkt)
	var flag int32
	if markLMS {
		flag = lmsFlag
	}
	if bwt == nil {
		for i := n - 1; i >= 0; i-- {
			p := sa[i]
			if p >= -1 {
				continue
			}
			x := ^p
			sa[i] = x
			induceS(t, sa, bkt, x-1, t[x-1], flag)
		}
		return
	}
	// The same, writing the symbol before each suffix to bwt: it is the
	// symbol the entry induces from, read once.
	bwt = bwt[:n]
	last := t[n-1]
	want, orig := r.want, r.orig
	for i := n - 1; i >= 0; i-- {
		p := sa[i]
		x := p
		if p < 0 {
			x = ^p
			sa[i] = x
		}
		c := last
		if x != 0 {
			c = t[x-1]
		}
		bwt[i] = byte(c)
		if x == want {
			orig = i
		}
		if p >= -1 {
			continue
		}
		induceS(t, sa, bkt, x-1, c, flag)
	}
	r.orig = orig
}

// induceS places the S-type suffix v, whose first symbol is c0, at its
// bucket's tail: complemented when its predecessor is S-type too (it is
// to induce in turn), else with flag; 0 has no predecessor and is not LMS.
func induceS[T symbol](t []T, sa, bkt []int32, v int32, c0 T, flag int32) {
	w := v
	if v > 0 {
		w = v | flag
		if t[v-1] <= c0 {
			w = ^v
		}
	}
	b := bkt[c0] - 1
	bkt[c0] = b
	sa[b] = w
}

// lmsFlag marks LMS entries in stage 1 (positions are below 2^30).
const lmsFlag = 1 << 30
