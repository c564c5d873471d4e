package pbzip2

import (
	"math/bits"
)

// Move-to-front, zero-run coding and the Huffman stage, following
// libbzip2's compress.c and huffman.c decision for decision: the number of
// tables from the symbol count, the initial tables from equal-frequency
// slices of the alphabet, four passes choosing a table per 50 symbols and
// rebuilding each table from the symbols it won, code lengths from a heap
// whose ties break on subtree depth, scaled down until none exceeds 17.

const (
	groupSize   = 50 // BZ_G_SIZE
	nGroupsMax  = 6  // BZ_N_GROUPS
	nIters      = 4  // BZ_N_ITERS
	maxCodeLen  = 17
	maxAlpha    = 258 // BZ_MAX_ALPHA_SIZE
	runA, runB  = 0, 1
	lesserCost  = 0
	greaterCost = 15
)

type huffState struct {
	mtfFreq [maxAlpha]int32
	// Tables indexed by symbol have 512 entries so that v&511 needs no
	// bounds check (symbols are below 258).
	length [nGroupsMax][512]uint8
	code   [nGroupsMax][512]uint32
	rfreq  [nGroupsMax][512]int32
	rfreq2 [nGroupsMax][512]int32
	pack   [512]uint64 // lengths in tables 0–3, 16 bits each
	pack45 [512]uint32 // lengths in tables 4 and 5
	nInUse int
	hb     heapBuf
}

type heapBuf struct {
	heap   [maxAlpha + 2]int32
	weight [maxAlpha * 2]int32
	parent [maxAlpha * 2]int32
}

// generateMTF turns the sorted block into move-to-front values with runs
// of zeros coded as RUNA/RUNB digits, ending with EOB, and counts them.
//
// libbzip2 moves the bytes' ranks among the bytes in use (unToSeq) to the
// front; the list here holds the bytes themselves, in the same order (the
// in-use bytes ascending, as the ranks are), so the positions and the
// values are the same without a lookup per byte.
func (e *Encoder) generateMTF() int {
	h := &e.huff
	h.nInUse = 0
	// The list: entry i is byte i%8 of word i/8. Entries past the bytes
	// in use are never reached: every byte of the block is found before.
	var yy [32]uint64
	for i, used := range e.inUse {
		if used {
			yy[h.nInUse>>3] |= uint64(i) << (8 * (h.nInUse & 7))
			h.nInUse++
		}
	}
	eob := h.nInUse + 1
	clear(h.mtfFreq[:eob+1])
	n := e.nblock
	mtfv := e.mtfv
	freq := &h.mtfFreq
	wr, zPend := 0, 0
	flushZeros := func() {
		zPend--
		for {
			if zPend&1 != 0 {
				mtfv[wr] = runB
				freq[runB]++
			} else {
				mtfv[wr] = runA
				freq[runA]++
			}
			wr++
			if zPend < 2 {
				break
			}
			zPend = (zPend - 2) / 2
		}
		zPend = 0
	}
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	// The first word lives in a register: most ranks are small, and a
	// word updated in place does not wait on memory.
	front := yy[0]
	for _, c := range e.bwt[:n] {
		if byte(front) == c {
			zPend++
			continue
		}
		if zPend > 0 {
			flushZeros()
		}
		// Move c to the front; k is where it was: the lowest zero byte of
		// w^(c×8) in the word that holds it (a borrow can only mark bytes
		// above a real zero). The words before it shift up by one byte,
		// each taking the top byte of the one before.
		var k int
		x := front ^ ones*uint64(c)
		if z := (x - ones) &^ x & highs; z != 0 {
			k = bits.TrailingZeros64(z) >> 3
			mask := uint64(1)<<(8*(k+1)) - 1
			front = front&^mask | (front<<8|uint64(c))&mask
		} else {
			carry := front >> 56
			front = front<<8 | uint64(c)
			for j := 1; ; j++ {
				w := yy[j&31]
				x := w ^ ones*uint64(c)
				if z := (x - ones) &^ x & highs; z != 0 {
					kk := bits.TrailingZeros64(z) >> 3
					// For kk = 7 the shift is 64 and mask all ones.
					mask := uint64(1)<<(8*(kk+1)) - 1
					yy[j&31] = w&^mask | (w<<8|carry)&mask
					k = j*8 + kk
					break
				}
				yy[j&31] = w<<8 | carry
				carry = w >> 56
			}
		}
		mtfv[wr] = uint16(k + 1)
		freq[k+1]++
		wr++
	}
	if zPend > 0 {
		flushZeros()
	}
	mtfv[wr] = uint16(eob)
	freq[eob]++
	return wr + 1
}

// sendMTF chooses the coding tables and writes the block's mapping table,
// selectors, tables and symbols.
func (e *Encoder) sendMTF(nMTF int) {
	h := &e.huff
	alphaSize := h.nInUse + 2
	mtfv := e.mtfv[:nMTF]
	for t := range nGroupsMax {
		for v := range alphaSize {
			h.length[t][v] = greaterCost
		}
	}
	var nGroups int
	switch {
	case nMTF < 200:
		nGroups = 2
	case nMTF < 600:
		nGroups = 3
	case nMTF < 1200:
		nGroups = 4
	case nMTF < 2400:
		nGroups = 5
	default:
		nGroups = 6
	}

	// Initial tables: slices of the alphabet of about equal frequency.
	{
		nPart, remF, gs := nGroups, int32(nMTF), 0
		for nPart > 0 {
			tFreq := remF / int32(nPart)
			ge, aFreq := gs-1, int32(0)
			for aFreq < tFreq && ge < alphaSize-1 {
				ge++
				aFreq += h.mtfFreq[ge]
			}
			if ge > gs && nPart != nGroups && nPart != 1 && (nGroups-nPart)%2 == 1 {
				aFreq -= h.mtfFreq[ge]
				ge--
			}
			for v := range alphaSize {
				if v >= gs && v <= ge {
					h.length[nPart-1][v] = lesserCost
				} else {
					h.length[nPart-1][v] = greaterCost
				}
			}
			nPart--
			gs = ge + 1
			remF -= aFreq
		}
	}

	nSelectors := 0
	for range nIters {
		for t := range nGroups {
			clear(h.rfreq[t][:alphaSize])
			clear(h.rfreq2[t][:alphaSize])
		}
		// Costs fit in 16 bits (50 symbols of at most 17 bits), so four
		// tables are summed in one word and two in another.
		for v := range alphaSize {
			h.pack[v] = uint64(h.length[3][v])<<48 | uint64(h.length[2][v])<<32 |
				uint64(h.length[1][v])<<16 | uint64(h.length[0][v])
			h.pack45[v] = uint32(h.length[5][v])<<16 | uint32(h.length[4][v])
		}
		nSelectors = 0
		for gs := 0; gs < nMTF; gs += groupSize {
			ge := min(gs+groupSize, nMTF)
			var c0123 uint64
			var c45 uint32
			for _, v := range mtfv[gs:ge] {
				c0123 += h.pack[v&511]
				c45 += h.pack45[v&511]
			}
			cost := [nGroupsMax]uint32{uint32(c0123 & 0xffff), uint32(c0123 >> 16 & 0xffff),
				uint32(c0123 >> 32 & 0xffff), uint32(c0123 >> 48), c45 & 0xffff, c45 >> 16}
			bt, bc := 0, cost[0]
			for t := 1; t < nGroups; t++ {
				if cost[t] < bc {
					bc, bt = cost[t], t
				}
			}
			e.sel[nSelectors] = byte(bt)
			nSelectors++
			// Two counters per symbol, alternating, so that a repeated
			// symbol's increments do not wait for each other.
			rf, rf2 := &h.rfreq[bt], &h.rfreq2[bt]
			g := mtfv[gs:ge]
			i := 0
			for ; i+2 <= len(g); i += 2 {
				rf[g[i]&511]++
				rf2[g[i+1]&511]++
			}
			if i < len(g) {
				rf[g[i]&511]++
			}
		}
		for t := range nGroups {
			for v := range alphaSize {
				h.rfreq[t][v] += h.rfreq2[t][v]
			}
			h.hb.makeCodeLengths(h.length[t][:alphaSize], h.rfreq[t][:alphaSize], maxCodeLen)
		}
	}

	// Move-to-front the selectors.
	{
		var pos [nGroupsMax]byte
		for i := range nGroups {
			pos[i] = byte(i)
		}
		for i, ll := range e.sel[:nSelectors] {
			j := 0
			tmp := pos[0]
			for ll != tmp {
				j++
				tmp, pos[j] = pos[j], tmp
			}
			pos[0] = tmp
			e.selM[i] = byte(j)
		}
	}

	for t := range nGroups {
		minLen, maxLen := uint8(32), uint8(0)
		for _, l := range h.length[t][:alphaSize] {
			maxLen = max(maxLen, l)
			minLen = min(minLen, l)
		}
		code := &h.code[t]
		vec := uint32(0)
		for n := minLen; n <= maxLen; n++ {
			for i, l := range h.length[t][:alphaSize] {
				if l == n {
					code[i] = vec
					vec++
				}
			}
			vec <<= 1
		}
	}

	// The mapping table: which of 16 ranges of 16 byte values occur, then
	// which values within them.
	w := &e.bw
	var used16 uint32
	for i := range 16 {
		for _, u := range e.inUse[i*16 : i*16+16] {
			if u {
				used16 |= 1 << (15 - i)
				break
			}
		}
	}
	w.bits(16, used16)
	for i := range 16 {
		if used16&(1<<(15-i)) == 0 {
			continue
		}
		var bits uint32
		for j, u := range e.inUse[i*16 : i*16+16] {
			if u {
				bits |= 1 << (15 - j)
			}
		}
		w.bits(16, bits)
	}

	w.bits(3, uint32(nGroups))
	w.bits(15, uint32(nSelectors))
	for _, m := range e.selM[:nSelectors] {
		// m ones then a zero (m < 6).
		w.bits(uint(m)+1, (1<<(m+1)-1)&^1)
	}

	for t := range nGroups {
		curr := h.length[t][0]
		w.bits(5, uint32(curr))
		for _, l := range h.length[t][:alphaSize] {
			for curr < l {
				w.bits(2, 2)
				curr++
			}
			for curr > l {
				w.bits(2, 3)
				curr--
			}
			w.bits(1, 0)
		}
	}

	for s, gs := 0, 0; gs < nMTF; s, gs = s+1, gs+groupSize {
		ge := min(gs+groupSize, nMTF)
		t := e.sel[s]
		ln, cd := &h.length[t], &h.code[t]
		for _, v := range mtfv[gs:ge] {
			w.bits(uint(ln[v&511]), cd[v&511])
		}
	}
}

// makeCodeLengths is BZ2_hbMakeCodeLengths: Huffman code lengths for freq
// (a zero frequency counts as 1). Weights carry the subtree depth in their
// low 8 bits, so equal frequencies merge shallow trees first; when a code
// is longer than maxLen every frequency is halved (plus one) and the tree
// rebuilt.
func (hb *heapBuf) makeCodeLengths(length []uint8, freq []int32, maxLen int) {
	heap, weight, parent := &hb.heap, &hb.weight, &hb.parent
	alphaSize := len(freq)
	for i, f := range freq {
		weight[i+1] = max(f, 1) << 8
	}
	for {
		nNodes, nHeap := alphaSize, 0
		heap[0], weight[0], parent[0] = 0, 0, -2
		for i := 1; i <= alphaSize; i++ {
			parent[i] = -1
			nHeap++
			heap[nHeap] = int32(i)
			hb.up(nHeap)
		}
		for nHeap > 1 {
			n1 := heap[1]
			heap[1] = heap[nHeap]
			nHeap--
			hb.down(1, nHeap)
			n2 := heap[1]
			heap[1] = heap[nHeap]
			nHeap--
			hb.down(1, nHeap)
			nNodes++
			parent[n1], parent[n2] = int32(nNodes), int32(nNodes)
			w1, w2 := weight[n1], weight[n2]
			weight[nNodes] = (w1&^0xff + w2&^0xff) | (1 + max(w1&0xff, w2&0xff))
			parent[nNodes] = -1
			nHeap++
			heap[nHeap] = int32(nNodes)
			hb.up(nHeap)
		}
		tooLong := false
		for i := 1; i <= alphaSize; i++ {
			j, k := 0, i
			for parent[k] >= 0 {
				k = int(parent[k])
				j++
			}
			length[i-1] = uint8(j)
			if j > maxLen {
				tooLong = true
			}
		}
		if !tooLong {
			return
		}
		for i := 1; i <= alphaSize; i++ {
			j := weight[i] >> 8
			weight[i] = (1 + j/2) << 8
		}
	}
}

// up and down are libbzip2's UPHEAP and DOWNHEAP; heap[0] (weight 0) is
// the sentinel that stops up.
func (hb *heapBuf) up(z int) {
	tmp := hb.heap[z]
	for hb.weight[tmp] < hb.weight[hb.heap[z>>1]] {
		hb.heap[z] = hb.heap[z>>1]
		z >>= 1
	}
	hb.heap[z] = tmp
}

func (hb *heapBuf) down(z, nHeap int) {
	tmp := hb.heap[z]
	for {
		y := z << 1
		if y > nHeap {
			break
		}
		if y < nHeap && hb.weight[hb.heap[y+1]] < hb.weight[hb.heap[y]] {
			y++
		}
		if hb.weight[tmp] < hb.weight[hb.heap[y]] {
			break
		}
		hb.heap[z] = hb.heap[y]
		z = y
	}
	hb.heap[z] = tmp
}
