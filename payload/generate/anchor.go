package generate

import (
	"io"
	"slices"
	"sort"
)

// Content-defined anchors find where a changed run of the new image came
// from in the old one, whatever the filesystem: a gear rolling hash picks
// positions by content (about one every anchorSpacing bytes), so the same
// bytes give the same anchors wherever they sit. Each anchor's hash (which
// depends on the 64 bytes before it) is its fingerprint.
const (
	anchorMask    = 1<<8 - 1 // one anchor per ~256 bytes
	maxAnchorHits = 8        // a fingerprint seen more often says nothing
)

var gear = func() [256]uint64 {
	var g [256]uint64
	x := uint64(0x9E3779B97F4A7C15)
	for i := range g {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		g[i] = x
	}
	return g
}()

type anchor struct {
	hash uint64
	off  int64
}

// anchors calls fn for every anchor in data (offsets relative to base).
// Runs of one repeated byte (free space) produce none.
func anchors(data []byte, base int64, fn func(hash uint64, off int64)) {
	var h uint64
	same := 0
	for i, b := range data {
		h = h<<1 + gear[b]
		if i > 0 && data[i-1] == b {
			same++
		} else {
			same = 0
		}
		if i >= 64 && h&anchorMask == 0 && same < 64 {
			fn(h, base+int64(i))
		}
	}
}

// anchorIndex maps fingerprints to positions in the old image.
type anchorIndex []anchor

// buildIndex reads old sequentially and indexes its anchors, dropping
// fingerprints that occur more than maxAnchorHits times.
func buildIndex(old io.ReaderAt, size int64) (anchorIndex, error) {
	var idx anchorIndex
	const chunk = 4 << 20
	buf := make([]byte, chunk+64)
	for off := int64(0); off < size; off += chunk {
		// Each chunk starts 64 bytes early so the hash is warm at its start.
		start := max(0, off-64)
		n, err := old.ReadAt(buf[:min(int64(len(buf)), size-start)], start)
		if err != nil && err != io.EOF {
			return nil, err
		}
		anchors(buf[:n], start, func(h uint64, at int64) {
			if at >= off { // earlier positions belong to the previous chunk
				idx = append(idx, anchor{h, at})
			}
		})
	}
	sort.Slice(idx, func(i, j int) bool {
		if idx[i].hash != idx[j].hash {
			return idx[i].hash < idx[j].hash
		}
		return idx[i].off < idx[j].off
	})
	out := idx[:0]
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && idx[j].hash == idx[i].hash {
			j++
		}
		if j-i <= maxAnchorHits {
			out = append(out, idx[i:j]...)
		}
		i = j
	}
	return slices.Clip(out), nil
}

func (idx anchorIndex) lookup(h uint64) []anchor {
	i := sort.Search(len(idx), func(i int) bool { return idx[i].hash >= h })
	j := i
	for j < len(idx) && idx[j].hash == h {
		j++
	}
	return idx[i:j]
}

// diagonals returns up to k offsets d (old position = new position + d)
// that most anchors of data (at new offset base) vote for, best first.
func (idx anchorIndex) diagonals(data []byte, base int64, k int) []int64 {
	votes := map[int64]int{}
	anchors(data, base, func(h uint64, at int64) {
		for _, a := range idx.lookup(h) {
			votes[a.off-at]++
		}
	})
	type dv struct {
		d int64
		v int
	}
	var all []dv
	for d, v := range votes {
		if v >= 2 {
			all = append(all, dv{d, v})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].v != all[j].v {
			return all[i].v > all[j].v
		}
		ai, aj := abs(all[i].d), abs(all[j].d)
		if ai != aj {
			return ai < aj
		}
		return all[i].d < all[j].d
	})
	var out []int64
	for _, x := range all {
		if len(out) == k {
			break
		}
		out = append(out, x.d)
	}
	return out
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
