package pbzip2

import "slices"

// The inverse BWT's walk. Each step loads tt at the row the step before
// found there: one cache miss after another in a 3.6 MB array, most of a
// block's decoding time when walked as one chain. The walk is cut
// instead at pivot rows spread over the array, each marked in tt's top
// bit: a segment starts after one pivot and ends at the next pivot it
// reaches. Eight lanes walk segments side by side, each taking the next
// unwalked segment when its own ends, so eight misses are in flight; the
// segments, found in no particular order, are then put in the walk's
// order by where each ended.

const (
	walkLanes    = 8
	walkPivots   = 256     // segments per block, besides origPtr's
	walkMinBlock = 1 << 14 // below this, one chain
	pivotFlag    = 1 << 31
	rowMask      = 1<<20 - 1 // rows of a 900 kB block fit in 20 bits
)

// segment is the bytes walked from one pivot to the next.
type segment struct {
	off, end int // in the walker's buffer
	next     int // the pivot it ended at (an index into pivots)
}

// walker holds the walk's buffers from block to block.
type walker struct {
	pivots []uint32 // rows, sorted
	segs   []segment
	buf    []byte // each lane writes in its own 1/walkLanes of it
}

// walk writes to raw (len(tt) bytes) the bytes of the rows visited from
// the row after origPtr on, along tt's links, as one chain would: for a
// valid block this is every row once, ending at origPtr itself.
func (w *walker) walk(tt []uint32, origPtr int, raw []byte) {
	n := len(tt)
	if n < walkMinBlock || n > rowMask {
		walkOne(tt, origPtr, raw)
		return
	}
	// Pivots: origPtr and rows evenly spaced.
	w.pivots = w.pivots[:0]
	for k := range walkPivots {
		w.pivots = append(w.pivots, uint32(k*n/walkPivots))
	}
	if i, found := slices.BinarySearch(w.pivots, uint32(origPtr)); !found {
		w.pivots = slices.Insert(w.pivots, i, uint32(origPtr))
	}
	for _, r := range w.pivots {
		tt[r] |= pivotFlag
	}
	w.segs = slices.Grow(w.segs[:0], len(w.pivots))[:len(w.pivots)]
	// A lane's share is about n/walkLanes, and twice that is room enough
	// unless the pivots fall very unevenly along the walk (a crafted
	// block can make them): a lane that runs out of room sends the block
	// to one chain, which gives the same bytes.
	share := 2 * n / walkLanes
	if len(w.buf) < share*walkLanes {
		w.buf = make([]byte, share*walkLanes)
	}
	buf := w.buf
	var (
		row   [walkLanes]uint32 // the row a lane visits next
		seg   [walkLanes]int    // the pivot its segment started from; -1: idle
		at    [walkLanes]int    // where it writes next in buf
		limit [walkLanes]int    // the end of its share
		taken int               // pivots whose segments have been started
	)
	for l := range walkLanes {
		at[l], limit[l] = l*share, (l+1)*share
	}
	// start gives lane l the next unwalked segment, if any.
	start := func(l int) bool {
		if taken == len(w.pivots) {
			seg[l] = -1
			return false
		}
		seg[l] = taken
		w.segs[taken] = segment{off: at[l]}
		row[l] = tt[w.pivots[taken]] >> 8 & rowMask
		taken++
		return true
	}
	active := 0
	for l := range walkLanes {
		if start(l) {
			active++
		}
	}
	for active > 0 {
		for l := range walkLanes {
			if seg[l] < 0 {
				continue
			}
			if at[l] == limit[l] { // uneven pivots, or a corrupt block
				active = -1
				break
			}
			e := tt[row[l]]
			buf[at[l]] = byte(e)
			at[l]++
			if e&pivotFlag == 0 {
				row[l] = e >> 8 & rowMask
				continue
			}
			// A pivot: the segment ends here, at the row that is its
			// last byte.
			i, _ := slices.BinarySearch(w.pivots, row[l])
			s := &w.segs[seg[l]]
			s.end, s.next = at[l], i
			if !start(l) {
				active--
			}
		}
	}
	for _, r := range w.pivots {
		tt[r] &^= pivotFlag
	}
	if active < 0 {
		walkOne(tt, origPtr, raw)
		return
	}
	// Put the segments in order, from origPtr's.
	first, _ := slices.BinarySearch(w.pivots, uint32(origPtr))
	k := 0
	for i := first; ; {
		s := w.segs[i]
		if k+s.end-s.off > n {
			break
		}
		k += copy(raw[k:], buf[s.off:s.end])
		if i = s.next; i == first {
			break
		}
	}
	if k != n {
		// tt is more than one cycle, so the block is corrupt (its CRC will
		// say so): walk it as one chain does, round origPtr's cycle.
		walkOne(tt, origPtr, raw)
	}
}

// walkOne walks tt as one chain.
func walkOne(tt []uint32, origPtr int, raw []byte) {
	p := tt[origPtr] >> 8
	for k := range raw {
		e := tt[p]
		raw[k] = byte(e)
		p = e >> 8
	}
}
