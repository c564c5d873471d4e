package pbzip2

// Sorting a block's cyclic rotations with a suffix sort.
//
// A block that is not a repetition u^k (k ≥ 2) of a shorter string has
// distinct rotations, so their sorted order is unique and any correct
// method gives libbzip2's. Rotate the block to start at its least
// rotation: the result L is a Lyndon word, and for a Lyndon word the order
// of the rotations equals the order of the suffixes (a suffix that is a
// prefix of another sorts first, and so does its rotation, because what
// follows it, L itself, is smaller than any proper suffix of L and not a
// prefix of one). The suffixes are sorted by SA-IS (Nong, Zhang and Chan,
// 2009) in linear time, with its buffers kept from block to block.

// rotSorter holds the buffers of the suffix sort.
type rotSorter struct {
	rot   []byte  // the block rotated to its least rotation
	types []byte  // 1 for S-type positions
	cnt   []int32 // symbol counts
	bkt   []int32 // bucket heads or tails
}

// sort writes the rotation starts of block in sorted order to ptr and
// returns true, or returns false when the block is periodic (its order
// among equal rotations is libbzip2's algorithm's, not a property of the
// data).
func (r *rotSorter) sort(block []byte, ptr []int32) bool {
	n := len(block)
	if n == 1 {
		ptr[0] = 0
		return true
	}
	m, periodic := leastRotation(block)
	if periodic {
		return false
	}
	if cap(r.rot) < n {
		r.rot = make([]byte, n)
		r.types = make([]byte, n)
		// Reduced problems have at most n/2 symbols.
		r.cnt = make([]int32, max(256, n/2+1))
		r.bkt = make([]int32, max(256, n/2+1))
	}
	rot := r.rot[:n]
	copy(rot, block[m:])
	copy(rot[n-m:], block[:m])
	sais(rot, ptr, 256, r)
	for i, p := range ptr {
		p += int32(m)
		if p >= int32(n) {
			p -= int32(n)
		}
		ptr[i] = p
	}
	return true
}

// leastRotation returns the start of the lexicographically least rotation
// of s and whether s is periodic, by the two-pointer method: i and j are
// candidates, and a mismatch after k equal bytes rules out k+1 starts
// after the larger one. Two candidates equal for n bytes mean s = u^k.
func leastRotation(s []byte) (int, bool) {
	n := len(s)
	i, j, k := 0, 1, 0
	for i < n && j < n && k < n {
		a, b := i+k, j+k
		if a >= n {
			a -= n
		}
		if b >= n {
			b -= n
		}
		switch {
		case s[a] == s[b]:
			k++
			continue
		case s[a] > s[b]:
			i += k + 1
		default:
			j += k + 1
		}
		if i == j {
			j++
		}
		k = 0
	}
	if k == n {
		return min(i, j), true
	}
	return min(i, j), false
}

// symbol is a text alphabet for sais: bytes at the top level, names in the
// reduced problems.
type symbol interface{ ~byte | ~int32 }

// sais writes the suffix array of t (symbols below k; the end of t sorts
// before every symbol) to sa.
func sais[T symbol](t []T, sa []int32, k int, r *rotSorter) {
	n := len(t)
	switch n {
	case 0:
		return
	case 1:
		sa[0] = 0
		return
	}
	if cap(r.cnt) < k {
		r.cnt = make([]int32, k)
		r.bkt = make([]int32, k)
	}
	cnt, bkt := r.cnt[:k], r.bkt[:k]
	types := r.types[:n]

	classify(t, types)
	counts(t, cnt)

	// Stage 1: sort the LMS substrings by placing the LMS positions at
	// their bucket tails and inducing.
	for i := range sa {
		sa[i] = -1
	}
	tails(cnt, bkt)
	for i := n - 1; i > 0; i-- {
		if types[i] == 1 && types[i-1] == 0 {
			c := t[i]
			bkt[c]--
			sa[bkt[c]] = int32(i)
		}
	}
	induce(t, sa, types, cnt, bkt)

	// Gather the sorted LMS positions at the front and name their
	// substrings; equal substrings get equal names.
	n1 := 0
	for _, p := range sa {
		if p > 0 && types[p] == 1 && types[p-1] == 0 {
			sa[n1] = p
			n1++
		}
	}
	for i := n1; i < n; i++ {
		sa[i] = -1
	}
	name, prev := int32(-1), int32(-1)
	for i := range n1 {
		p := sa[i]
		if prev < 0 || !equalLMS(t, types, int(prev), int(p)) {
			name++
		}
		prev = p
		sa[n1+int(p>>1)] = name
	}
	names := int(name) + 1
	// Compact the names, in text order, to the end of sa.
	j := n - 1
	for i := n - 1; i >= n1; i-- {
		if sa[i] >= 0 {
			sa[j] = sa[i]
			j--
		}
	}
	s1, sa1 := sa[n-n1:], sa[:n1]

	// Stage 2: sort the LMS suffixes, recursively when names repeat.
	if names < n1 {
		sais(s1, sa1, names, r)
		// The recursion used the shared buffers: recompute this level's.
		classify(t, types)
		counts(t, cnt)
	} else {
		for i, c := range s1 {
			sa1[c] = int32(i)
		}
	}
	// Map the reduced suffixes back to LMS positions.
	j = 0
	for i := 1; i < n; i++ {
		if types[i] == 1 && types[i-1] == 0 {
			s1[j] = int32(i)
			j++
		}
	}
	for i, x := range sa1 {
		sa1[i] = s1[x]
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
	induce(t, sa, types, cnt, bkt)
}

// classify marks S-type positions: t[i] < t[i+1], or equal and i+1 is
// S-type. The last position is L-type (the end sorts first).
func classify[T symbol](t []T, types []byte) {
	n := len(t)
	types[n-1] = 0
	for i := n - 2; i >= 0; i-- {
		switch {
		case t[i] < t[i+1]:
			types[i] = 1
		case t[i] > t[i+1]:
			types[i] = 0
		default:
			types[i] = types[i+1]
		}
	}
}

func counts[T symbol](t []T, cnt []int32) {
	clear(cnt)
	for _, c := range t {
		cnt[c]++
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
func induce[T symbol](t []T, sa []int32, types []byte, cnt, bkt []int32) {
	n := len(t)
	heads(cnt, bkt)
	c := t[n-1]
	sa[bkt[c]] = int32(n - 1)
	bkt[c]++
	for i := 0; i < n; i++ {
		p := sa[i] - 1
		if p >= 0 && types[p] == 0 {
			c := t[p]
			sa[bkt[c]] = p
			bkt[c]++
		}
	}
	tails(cnt, bkt)
	for i := n - 1; i >= 0; i-- {
		p := sa[i] - 1
		if p >= 0 && types[p] == 1 {
			c := t[p]
			bkt[c]--
			sa[bkt[c]] = p
		}
	}
}

// equalLMS reports whether the LMS substrings at a and b (each running to
// the next LMS position, inclusive) are equal. One that reaches the end of
// the text is unique.
func equalLMS[T symbol](t []T, types []byte, a, b int) bool {
	n := len(t)
	for d := 0; ; d++ {
		if a+d == n || b+d == n {
			return false
		}
		if t[a+d] != t[b+d] || types[a+d] != types[b+d] {
			return false
		}
		if d > 0 {
			aEnd := types[a+d] == 1 && types[a+d-1] == 0
			bEnd := types[b+d] == 1 && types[b+d-1] == 0
			if aEnd || bEnd {
				return aEnd && bEnd
			}
		}
	}
}
