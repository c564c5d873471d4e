package bsdiff

import (
	"bytes"
	"encoding/binary"

	"github.com/augen-project/augen/internal/pbzip2"
	"github.com/augen-project/augen/internal/sais"
)

// Diff returns a BSDIFF40 patch that turns old into new: Colin Percival's
// algorithm (suffix-array matches of new against old, extended forwards and
// backwards into approximate matches whose bytewise differences compress
// well), with each block compressed by bzip2 at level 9. The output is
// deterministic. Memory is about 13×len(old) + 3×len(new) (the suffix
// array and its sort's buffers): callers split large regions.
func Diff(old, new []byte) ([]byte, error) {
	idx, err := newIndex(old)
	if err != nil {
		return nil, err
	}
	var ctrl bytes.Buffer
	db := make([]byte, 0, len(new))
	eb := make([]byte, 0, len(new)/8)
	var scan, length, pos, lastScan, lastPos, lastOffset int
	for scan < len(new) {
		oldScore := 0
		scan += length
		for scsc := scan; scan < len(new); scan++ {
			length, pos = idx.search(new[scan:])
			for ; scsc < scan+length; scsc++ {
				if scsc+lastOffset < len(old) && old[scsc+lastOffset] == new[scsc] {
					oldScore++
				}
			}
			if (length == oldScore && length != 0) || length > oldScore+8 {
				break
			}
			if scan+lastOffset < len(old) && old[scan+lastOffset] == new[scan] {
				oldScore--
			}
		}
		if length == oldScore && scan != len(new) {
			continue
		}
		// Extend the previous match forwards (lenf) and this one
		// backwards (lenb), as far as at least half the bytes agree.
		s, sf, lenf := 0, 0, 0
		for i := 0; lastScan+i < scan && lastPos+i < len(old); {
			if old[lastPos+i] == new[lastScan+i] {
				s++
			}
			i++
			if s*2-i > sf*2-lenf {
				sf, lenf = s, i
			}
		}
		lenb := 0
		if scan < len(new) {
			s, sb := 0, 0
			for i := 1; scan >= lastScan+i && pos >= i; i++ {
				if old[pos-i] == new[scan-i] {
					s++
				}
				if s*2-i > sb*2-lenb {
					sb, lenb = s, i
				}
			}
		}
		if lastScan+lenf > scan-lenb {
			overlap := lastScan + lenf - (scan - lenb)
			s, ss, lens := 0, 0, 0
			for i := 0; i < overlap; i++ {
				if new[lastScan+lenf-overlap+i] == old[lastPos+lenf-overlap+i] {
					s++
				}
				if new[scan-lenb+i] == old[pos-lenb+i] {
					s--
				}
				if s > ss {
					ss, lens = s, i+1
				}
			}
			lenf += lens - overlap
			lenb -= lens
		}
		for i := 0; i < lenf; i++ {
			db = append(db, new[lastScan+i]-old[lastPos+i])
		}
		extra := scan - lenb - (lastScan + lenf)
		eb = append(eb, new[lastScan+lenf:lastScan+lenf+extra]...)
		writeOff(&ctrl, int64(lenf))
		writeOff(&ctrl, int64(extra))
		writeOff(&ctrl, int64(pos-lenb-(lastPos+lenf)))
		lastScan, lastPos, lastOffset = scan-lenb, pos-lenb, pos-scan
	}
	cb, err := compress(ctrl.Bytes())
	if err != nil {
		return nil, err
	}
	dbz, err := compress(db)
	if err != nil {
		return nil, err
	}
	ebz, err := compress(eb)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 32, 32+len(cb)+len(dbz)+len(ebz))
	copy(out, Magic)
	putOff(out[8:], int64(len(cb)))
	putOff(out[16:], int64(len(dbz)))
	putOff(out[24:], int64(len(new)))
	out = append(append(append(out, cb...), dbz...), ebz...)
	return out, nil
}

// index finds matches in old: its suffix array, and where the suffixes
// starting with each pair of bytes begin in it.
type index struct {
	old []byte
	sa  []int32
	// bucket[k] is the first place in sa of the suffixes whose first two
	// bytes, read as a big-endian number, are at least k (a one-byte
	// suffix counts as that byte followed by 0, before which it sorts).
	// It narrows each binary search by 16 steps, which on incompressible
	// data, where almost every position is searched, is most of them.
	bucket []int32
}

// bucketMin is the old size from which the bucket table (256 KiB) pays.
const bucketMin = 1 << 16

func newIndex(old []byte) (*index, error) {
	sa, err := sais.New(old)
	if err != nil {
		return nil, err
	}
	x := &index{old: old, sa: sa}
	if len(old) >= bucketMin {
		x.bucket = make([]int32, 1<<16+1)
		for p := range old {
			x.bucket[pairAt(old, p)+1]++
		}
		for k := 1; k < len(x.bucket); k++ {
			x.bucket[k] += x.bucket[k-1]
		}
	}
	return x, nil
}

func pairAt(b []byte, p int) int {
	if p+1 < len(b) {
		return int(b[p])<<8 | int(b[p+1])
	}
	return int(b[p]) << 8
}

// search finds the longest prefix of new that occurs in old, by binary
// search over old's suffix array (within the suffixes that share new's
// first two bytes, when there are any).
func (x *index) search(new []byte) (length, pos int) {
	st, en := 0, len(x.sa)-1
	if en < 0 {
		return 0, 0
	}
	if x.bucket != nil && len(new) >= 2 {
		k := pairAt(new, 0)
		if lo, hi := int(x.bucket[k]), int(x.bucket[k+1]); lo < hi {
			st, en = lo, hi-1
		}
	}
	// The suffixes are compared in full (a proper prefix of new sorts
	// before it); bsdiff's own truncated comparison counts one as equal
	// and can then miss the longest match.
	old, sa := x.old, x.sa
	for en-st >= 2 {
		m := st + (en-st)/2
		if bytes.Compare(old[sa[m]:], new) < 0 {
			st = m
		} else {
			en = m
		}
	}
	a, b := matchLen(old[sa[st]:], new), matchLen(old[sa[en]:], new)
	if a > b {
		return a, int(sa[st])
	}
	return b, int(sa[en])
}

func matchLen(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// putOff encodes bsdiff's sign-magnitude little-endian integer.
func putOff(b []byte, v int64) {
	neg := v < 0
	if neg {
		v = -v
	}
	binary.LittleEndian.PutUint64(b, uint64(v))
	if neg {
		b[7] |= 0x80
	}
}

func writeOff(w *bytes.Buffer, v int64) {
	var b [8]byte
	putOff(b[:], v)
	w.Write(b[:])
}

// compress is how bsdiff writes each of its three parts: BZ2_bzWrite at
// level 9, then close (libbzip2's streaming mode).
func compress(b []byte) ([]byte, error) {
	return pbzip2.Compress(b, pbzip2.Stream), nil
}
