package pbzip2

// libbzip2's block sort, reproduced step for step. It is used only for
// periodic blocks (u^k, k ≥ 2): there equal rotations exist, the order
// libbzip2's algorithm happens to leave them in decides the origin
// pointer, and that order is a property of the algorithm, not of the data.
// Blocks under 10,000 bytes go to the fallback sort (prefix doubling with
// a pseudo-random three-way quicksort); longer ones to the main sort (a
// two-byte radix sort, then three-way radix quicksort and shell sort per
// bucket, with the "quadrant" cache of finished buckets), which gives up
// for the fallback once its comparisons exceed 9 × n steps of 8 bytes.
// Every tie-breaking detail below (pivot choices, insertion order, the
// budget's accounting) changes which rotation lands where among equals.

const (
	nRadix      = 2
	nQsort      = 12
	mainSmall   = 20
	mainDepth   = nRadix + nQsort
	fbSmall     = 10
	qsortStack  = 100
	setMask     = 1 << 21
	clearMask   = ^uint32(setMask)
	fallbackMin = 10000
	// budgetFactor is (workFactor-1)/3 for the default work factor 30.
	budgetFactor = 9
)

type libSorter struct {
	quadrant []uint16
	ftab     []uint32
	eclass   []uint32
	bhtab    []uint32
}

func newLibSorter() *libSorter {
	return &libSorter{
		quadrant: make([]uint16, blockCap+overshoot),
		ftab:     make([]uint32, 65537),
		eclass:   make([]uint32, blockCap),
		bhtab:    make([]uint32, blockCap/32+4),
	}
}

// sort writes to ptr the rotation order libbzip2 gives block[:n]; block
// has room for the overshoot after n.
func (s *libSorter) sort(block []byte, n int, ptr []int32) {
	if n < fallbackMin {
		s.fallbackSort(ptr, block, n)
		return
	}
	budget := int32(n * budgetFactor)
	s.mainSort(ptr, block, n, &budget)
	if budget < 0 {
		s.fallbackSort(ptr, block, n)
	}
}

// ---- fallback sort ----

func (s *libSorter) fallbackSort(fmap []int32, block []byte, n int) {
	eclass := s.eclass[:n]
	bhtab := s.bhtab[:2+n/32+2]
	var ftab [257]int32
	for _, c := range block[:n] {
		ftab[c]++
	}
	for i := 1; i < 257; i++ {
		ftab[i] += ftab[i-1]
	}
	for i := range n {
		c := block[i]
		k := ftab[c] - 1
		ftab[c] = k
		fmap[k] = int32(i)
	}
	clear(bhtab)
	set := func(z int) { bhtab[z>>5] |= 1 << (z & 31) }
	isSet := func(z int) bool { return bhtab[z>>5]&(1<<(z&31)) != 0 }
	for i := range 256 {
		set(int(ftab[i]))
	}
	// Sentinel bits past the end: set, clear, set, clear…
	for i := range 32 {
		set(n + 2*i)
		bhtab[(n+2*i+1)>>5] &^= 1 << ((n + 2*i + 1) & 31)
	}

	for h := 1; ; h *= 2 {
		j := 0
		for i := range n {
			if isSet(i) {
				j = i
			}
			k := int(fmap[i]) - h
			if k < 0 {
				k += n
			}
			eclass[k] = uint32(j)
		}
		notDone := 0
		r := -1
		for {
			// Find the next bucket of more than one.
			k := r + 1
			for isSet(k) && k&31 != 0 {
				k++
			}
			if isSet(k) {
				for bhtab[k>>5] == 0xffffffff {
					k += 32
				}
				for isSet(k) {
					k++
				}
			}
			l := k - 1
			if l >= n {
				break
			}
			for !isSet(k) && k&31 != 0 {
				k++
			}
			if !isSet(k) {
				for bhtab[k>>5] == 0 {
					k += 32
				}
				for !isSet(k) {
					k++
				}
			}
			r = k - 1
			if r >= n {
				break
			}
			if r > l {
				notDone += r - l + 1
				fallbackQSort3(fmap, eclass, l, r)
				cc := int64(-1)
				for i := l; i <= r; i++ {
					cc1 := int64(eclass[fmap[i]])
					if cc != cc1 {
						set(i)
						cc = cc1
					}
				}
			}
		}
		if h*2 > n || notDone == 0 {
			break
		}
	}
}

func fallbackSimpleSort(fmap []int32, eclass []uint32, lo, hi int) {
	if lo == hi {
		return
	}
	if hi-lo > 3 {
		for i := hi - 4; i >= lo; i-- {
			tmp := fmap[i]
			ec := eclass[tmp]
			j := i + 4
			for ; j <= hi && ec > eclass[fmap[j]]; j += 4 {
				fmap[j-4] = fmap[j]
			}
			fmap[j-4] = tmp
		}
	}
	for i := hi - 1; i >= lo; i-- {
		tmp := fmap[i]
		ec := eclass[tmp]
		j := i + 1
		for ; j <= hi && ec > eclass[fmap[j]]; j++ {
			fmap[j-1] = fmap[j]
		}
		fmap[j-1] = tmp
	}
}

func fallbackQSort3(fmap []int32, eclass []uint32, loSt, hiSt int) {
	var stackLo, stackHi [qsortStack]int
	sp := 0
	push := func(lo, hi int) { stackLo[sp], stackHi[sp] = lo, hi; sp++ }
	r := uint32(0)
	push(loSt, hiSt)
	for sp > 0 {
		sp--
		lo, hi := stackLo[sp], stackHi[sp]
		if hi-lo < fbSmall {
			fallbackSimpleSort(fmap, eclass, lo, hi)
			continue
		}
		// libbzip2's pseudo-random choice of pivot among lo, mid, hi.
		r = (r*7621 + 1) % 32768
		var med uint32
		switch r % 3 {
		case 0:
			med = eclass[fmap[lo]]
		case 1:
			med = eclass[fmap[(lo+hi)>>1]]
		default:
			med = eclass[fmap[hi]]
		}
		key := func(p int32) int { return int(eclass[p]) }
		nn, mm, ok := partition3(fmap, lo, hi, key, int(med))
		if !ok {
			continue
		}
		if nn-lo > hi-mm {
			push(lo, nn)
			push(mm, hi)
		} else {
			push(mm, hi)
			push(lo, nn)
		}
	}
}

// partition3 is the three-way partition both of libbzip2's quicksorts
// use, in its exact order of swaps: elements of p[lo:hi+1] equal to med
// (by key) are gathered at both ends while the rest is split, then swapped
// to the middle. It returns the last index of the part below med and the
// first of the part above it, or ok = false when every element equals med.
func partition3(p []int32, lo, hi int, key func(int32) int, med int) (nn, mm int, ok bool) {
	unLo, ltLo, unHi, gtHi := lo, lo, hi, hi
	for {
		for unLo <= unHi {
			c := key(p[unLo]) - med
			if c == 0 {
				p[unLo], p[ltLo] = p[ltLo], p[unLo]
				ltLo++
				unLo++
				continue
			}
			if c > 0 {
				break
			}
			unLo++
		}
		for unLo <= unHi {
			c := key(p[unHi]) - med
			if c == 0 {
				p[unHi], p[gtHi] = p[gtHi], p[unHi]
				gtHi--
				unHi--
				continue
			}
			if c < 0 {
				break
			}
			unHi--
		}
		if unLo > unHi {
			break
		}
		p[unLo], p[unHi] = p[unHi], p[unLo]
		unLo++
		unHi--
	}
	if gtHi < ltLo {
		return 0, 0, false
	}
	m := min(ltLo-lo, unLo-ltLo)
	vswap(p, lo, unLo-m, m)
	m = min(hi-gtHi, gtHi-unHi)
	vswap(p, unLo, hi-m+1, m)
	return lo + unLo - ltLo - 1, hi - (gtHi - unHi) + 1, true
}

func vswap(p []int32, a, b, n int) {
	for ; n > 0; n-- {
		p[a], p[b] = p[b], p[a]
		a++
		b++
	}
}

// ---- main sort ----

func (s *libSorter) mainSort(ptr []int32, block []byte, n int, budget *int32) {
	quadrant := s.quadrant[:n+overshoot]
	ftab := s.ftab
	clear(ftab)
	// Two-byte frequencies; bucket of i is block[i], block[i+1] (cyclic).
	j := uint32(block[0]) << 8
	for i := n - 1; i >= 0; i-- {
		quadrant[i] = 0
		j = j>>8 | uint32(block[i])<<8
		ftab[j]++
	}
	for i := range overshoot {
		block[n+i] = block[i]
		quadrant[n+i] = 0
	}
	for i := 1; i <= 65536; i++ {
		ftab[i] += ftab[i-1]
	}
	sv := uint32(block[0]) << 8
	for i := n - 1; i >= 0; i-- {
		sv = (sv>>8 | uint32(block[i])<<8) & 0xffff
		k := ftab[sv] - 1
		ftab[sv] = k
		ptr[k] = int32(i)
	}

	bigFreq := func(b int32) uint32 { return ftab[(b+1)<<8] - ftab[b<<8] }
	var runningOrder [256]int32
	var bigDone [256]bool
	for i := range runningOrder {
		runningOrder[i] = int32(i)
	}
	// Shell sort of the big buckets by size, smallest first.
	for _, h := range [...]int{121, 40, 13, 4, 1} {
		for i := h; i <= 255; i++ {
			vv := runningOrder[i]
			j := i
			for bigFreq(runningOrder[j-h]) > bigFreq(vv) {
				runningOrder[j] = runningOrder[j-h]
				j -= h
				if j <= h-1 {
					break
				}
			}
			runningOrder[j] = vv
		}
	}

	var copyStart, copyEnd [256]int32
	for i := range 256 {
		ss := runningOrder[i]
		// Step 1: sort the small buckets [ss, j] not yet done.
		for j := range int32(256) {
			if j == ss {
				continue
			}
			sb := ss<<8 + j
			if ftab[sb]&setMask == 0 {
				lo := int(ftab[sb] & clearMask)
				hi := int(ftab[sb+1]&clearMask) - 1
				if hi > lo {
					s.mainQSort3(ptr, block, quadrant, n, lo, hi, nRadix, budget)
					if *budget < 0 {
						return
					}
				}
			}
			ftab[sb] |= setMask
		}
		// Step 2: from the sorted big bucket ss, synthesise the order of
		// the small buckets [t, ss] for every t.
		for j := range 256 {
			copyStart[j] = int32(ftab[j<<8+int(ss)] & clearMask)
			copyEnd[j] = int32(ftab[j<<8+int(ss)+1]&clearMask) - 1
		}
		// pred is the rotation before the one at ptr[j], and its byte.
		pred := func(j int32) (int32, byte) {
			k := ptr[j] - 1
			if k < 0 {
				k += int32(n)
			}
			return k, block[k]
		}
		for j := int32(ftab[ss<<8] & clearMask); j < copyStart[ss]; j++ {
			if k, c1 := pred(j); !bigDone[c1] {
				ptr[copyStart[c1]] = k
				copyStart[c1]++
			}
		}
		for j := int32(ftab[(ss+1)<<8]&clearMask) - 1; j > copyEnd[ss]; j-- {
			if k, c1 := pred(j); !bigDone[c1] {
				ptr[copyEnd[c1]] = k
				copyEnd[c1]--
			}
		}
		for j := range 256 {
			ftab[j<<8+int(ss)] |= setMask
		}
		// Step 3: record the bucket's order in the quadrants.
		bigDone[ss] = true
		if i < 255 {
			bbStart := int(ftab[ss<<8] & clearMask)
			bbSize := int(ftab[(ss+1)<<8]&clearMask) - bbStart
			shifts := 0
			for bbSize>>shifts > 65534 {
				shifts++
			}
			for j := bbSize - 1; j >= 0; j-- {
				a := ptr[bbStart+j]
				q := uint16(j >> shifts)
				quadrant[a] = q
				if a < overshoot {
					quadrant[int(a)+n] = q
				}
			}
		}
	}
}

func mmed3(a, b, c byte) byte {
	if a > b {
		a, b = b, a
	}
	if b > c {
		b = c
		if a > b {
			b = a
		}
	}
	return b
}

func (s *libSorter) mainQSort3(ptr []int32, block []byte, quadrant []uint16, n, loSt, hiSt, dSt int, budget *int32) {
	var stackLo, stackHi, stackD [qsortStack]int
	sp := 0
	push := func(lo, hi, d int) { stackLo[sp], stackHi[sp], stackD[sp] = lo, hi, d; sp++ }
	push(loSt, hiSt, dSt)
	for sp > 0 {
		sp--
		lo, hi, d := stackLo[sp], stackHi[sp], stackD[sp]
		if hi-lo < mainSmall || d > mainDepth {
			mainSimpleSort(ptr, block, quadrant, n, lo, hi, d, budget)
			if *budget < 0 {
				return
			}
			continue
		}
		med := int(mmed3(block[int(ptr[lo])+d], block[int(ptr[hi])+d], block[int(ptr[(lo+hi)>>1])+d]))
		key := func(p int32) int { return int(block[int(p)+d]) }
		nn, mm, ok := partition3(ptr, lo, hi, key, med)
		if !ok {
			push(lo, hi, d+1)
			continue
		}
		next := [3][3]int{{lo, nn, d}, {mm, hi, d}, {nn + 1, mm - 1, d + 1}}
		size := func(a int) int { return next[a][1] - next[a][0] }
		if size(0) < size(1) {
			next[0], next[1] = next[1], next[0]
		}
		if size(1) < size(2) {
			next[1], next[2] = next[2], next[1]
		}
		if size(0) < size(1) {
			next[0], next[1] = next[1], next[0]
		}
		for _, x := range next {
			push(x[0], x[1], x[2])
		}
	}
}

var incs = [...]int{1, 4, 13, 40, 121, 364, 1093, 3280, 9841, 29524, 88573, 265720, 797161, 2391484}

func mainSimpleSort(ptr []int32, block []byte, quadrant []uint16, n, lo, hi, d int, budget *int32) {
	bigN := hi - lo + 1
	if bigN < 2 {
		return
	}
	hp := 0
	for incs[hp] < bigN {
		hp++
	}
	for hp--; hp >= 0; hp-- {
		h := incs[hp]
		i := lo + h
	triples:
		for {
			for range 3 {
				if i > hi {
					break triples
				}
				v := ptr[i]
				j := i
				for mainGtU(int(ptr[j-h])+d, int(v)+d, block, quadrant, n, budget) {
					ptr[j] = ptr[j-h]
					j -= h
					if j <= lo+h-1 {
						break
					}
				}
				ptr[j] = v
				i++
			}
			if *budget < 0 {
				return
			}
		}
	}
}

// mainGtU reports whether the rotation at i1 sorts after the one at i2,
// comparing bytes and then the quadrant cache 8 at a time; each round of 8
// costs one unit of budget. Equal rotations compare false.
func mainGtU(i1, i2 int, block []byte, quadrant []uint16, n int, budget *int32) bool {
	for range 12 {
		c1, c2 := block[i1], block[i2]
		if c1 != c2 {
			return c1 > c2
		}
		i1++
		i2++
	}
	for k := n + 8; k >= 0; k -= 8 {
		for range 8 {
			c1, c2 := block[i1], block[i2]
			if c1 != c2 {
				return c1 > c2
			}
			s1, s2 := quadrant[i1], quadrant[i2]
			if s1 != s2 {
				return s1 > s2
			}
			i1++
			i2++
		}
		if i1 >= n {
			i1 -= n
		}
		if i2 >= n {
			i2 -= n
		}
		*budget--
	}
	return false
}
