package pbzip2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync"
)

// Magics, 48 bits each, at any bit offset of a bzip2 stream.
const (
	blockMagic = 0x314159265359
	endMagic   = 0x177245385090
	maxBlock   = 900000 // level 9: the largest BWT block
)

var errTruncated = errors.New("data ends inside the block")

// Errors for streams libbzip2 decodes but this decoder refuses: no
// encoder since bzip2 0.9.5 writes randomised blocks, and libbzip2 builds
// its tables from an over-subscribed code without complaint, decoding
// whatever its limit/base arrays then say. Callers that stand in for the
// client report these as stricter than libbzip2 (ErrStricterThanLibbzip2).
var (
	errRandomised     = fmt.Errorf("%w: randomised blocks are not supported", ErrStricterThanLibbzip2)
	errOversubscribed = fmt.Errorf("%w: over-subscribed Huffman code", ErrStricterThanLibbzip2)
)

// ErrStricterThanLibbzip2 is matched by the errors for input that
// libbzip2 would decode (or would not yet have rejected) but this decoder
// refuses.
var ErrStricterThanLibbzip2 = errors.New("refused, though libbzip2 accepts it")

// bitReader reads MSB-first bits from data, starting at a bit offset.
// Reads past the end yield zeros and set over.
type bitReader struct {
	data []byte
	pos  int    // next byte to load
	acc  uint64 // bits, left-aligned
	n    uint   // valid bits in acc
	over bool
}

func newBitReader(data []byte, bit uint64) *bitReader {
	br := &bitReader{data: data, pos: int(bit / 8)}
	br.fill()
	br.consume(uint(bit % 8))
	return br
}

// refill8 loads the eight bytes at pos below acc's nb valid bits (nb ≤
// 56) and keeps as many whole bytes as fit; ok is false, with nothing
// changed, when fewer than eight bytes remain. The bits below the kept
// ones are the stream's own next bits, so loading them again later
// changes nothing. The decoding loop calls it on its own copy of a
// bitReader's state.
func refill8(data []byte, pos int, acc uint64, nb uint) (uint64, uint, int, bool) {
	if pos+8 > len(data) {
		return acc, nb, pos, false
	}
	acc |= binary.BigEndian.Uint64(data[pos:]) >> nb
	k := (63 - nb) >> 3
	return acc, nb + k<<3, pos + int(k), true
}

func (b *bitReader) fill() {
	var ok bool
	if b.acc, b.n, b.pos, ok = refill8(b.data, b.pos, b.acc, b.n); ok {
		return
	}
	for b.n <= 56 {
		var c byte
		if b.pos < len(b.data) {
			c = b.data[b.pos]
		} else {
			b.over = true
		}
		b.pos++
		b.acc |= uint64(c) << (56 - b.n)
		b.n += 8
	}
}

func (b *bitReader) peek(k uint) uint32 { return uint32(b.acc >> (64 - k)) }

// consume drops k bits; at least 32 are always ready after it, enough for
// any peek.
func (b *bitReader) consume(k uint) {
	b.acc <<= k
	b.n -= k
	if b.n < 32 {
		b.fill()
	}
}

func (b *bitReader) bits(k uint) uint32 {
	v := b.peek(k)
	b.consume(k)
	return v
}

// past reports whether bits past the end of data were consumed.
func (b *bitReader) past() bool { return b.over && b.bitPos() > uint64(len(b.data))*8 }

// bitPos is the absolute position (in bits) of the next unread bit.
func (b *bitReader) bitPos() uint64 { return uint64(b.pos)*8 - uint64(b.n) }

// huffman decodes one group's canonical prefix code (lengths 1..20) with a
// lookup table for codes up to lookupBits and a slow path beyond.
const lookupBits = 10

type huffman struct {
	table  [1 << lookupBits]uint16 // symbol<<5 | length; 0 = longer code
	limit  [21]int32               // largest code of each length (-1: none)
	base   [21]int32               // first code of each length minus its perm index
	perm   []uint16
	minLen uint
	maxLen uint
}

func (h *huffman) build(lengths []uint8) error {
	h.table = [1 << lookupBits]uint16{} // reused across blocks
	h.minLen, h.maxLen = 32, 0
	for _, l := range lengths {
		h.minLen = min(h.minLen, uint(l))
		h.maxLen = max(h.maxLen, uint(l))
	}
	h.perm = h.perm[:0]
	code := int32(0)
	for l := uint(1); l <= 20; l++ {
		h.base[l] = code - int32(len(h.perm))
		for sym, sl := range lengths {
			if uint(sl) != l {
				continue
			}
			if code >= 1<<l {
				return errOversubscribed
			}
			if l <= lookupBits {
				first := code << (lookupBits - l)
				for i := int32(0); i < 1<<(lookupBits-l); i++ {
					h.table[first+i] = uint16(sym)<<5 | uint16(l)
				}
			}
			h.perm = append(h.perm, uint16(sym))
			code++
		}
		h.limit[l] = code - 1
		code <<= 1
	}
	return nil
}

func (h *huffman) decode(br *bitReader) (uint16, error) {
	if e := h.table[br.peek(lookupBits)]; e != 0 {
		br.consume(uint(e & 31))
		return e >> 5, nil
	}
	for l := uint(lookupBits + 1); l <= h.maxLen; l++ {
		v := int32(br.peek(l))
		if v <= h.limit[l] {
			idx := v - h.base[l]
			if idx < 0 || int(idx) >= len(h.perm) {
				return 0, errors.New("bad Huffman code")
			}
			br.consume(l)
			return h.perm[idx], nil
		}
	}
	return 0, errors.New("bad Huffman code")
}

// decoder holds the buffers one worker reuses for every block.
type decoder struct {
	tt    []uint32
	raw   []byte // the block before run-length decoding
	w     walker
	trees [6]huffman
	sel   []uint8
	// maxOut, if > 0, bounds a block's output: runs expand up to ~50x,
	// so a block is stopped as it grows past what the caller can take,
	// not after.
	maxOut int
	// level is the stream's block size (1..9; 0 means 9): it bounds the
	// block's length and origin pointer as libbzip2 bounds them.
	level int
	// lazyCRC makes decodeBlock return a block whose CRC does not match,
	// with the mismatch in block.crcErr.
	lazyCRC bool
	// errBit is where the last decodeBlock stopped reading.
	errBit uint64
}

// errTooLarge is returned when a block's output passes maxOut.
var errTooLarge = ErrTooLarge

// ErrTooLarge is matched by the errors for data that decodes to more than
// the caller allowed.
var ErrTooLarge = errors.New("block decodes to more than the bytes it may fill")

// block is one decoded block.
type block struct {
	out    []byte
	crc    uint32 // stored
	endBit uint64 // where the next magic must start
	n      int    // BWT length
	// pendingRun: the block ends in four equal bytes and no count.
	pendingRun bool
	// crcErr is the CRC mismatch, kept (not returned) when lazyCRC is
	// set: libbzip2 checks a block's CRC only once all its output has
	// been read.
	crcErr error
}

// decodeBlock decodes the block whose 48-bit magic starts at bit of data,
// checks its CRC and returns its output and end. An error found where the
// bits read run past the end of data is errTruncated: more data might have
// made the block valid. d.errBit is then where the decoder stopped.
func (d *decoder) decodeBlock(data []byte, bit uint64, out []byte) (*block, error) {
	br := newBitReader(data, bit)
	b, err := d.decodeBlockBits(br, out)
	d.errBit = br.bitPos()
	// An error whose bits reach past the data (a Huffman code is looked up
	// with up to 20 bits ahead) may be only the zeros read past its end.
	if err != nil && err != errTooLarge && br.bitPos()+24 > uint64(len(data))*8 {
		err = errTruncated
	}
	return b, err
}

func (d *decoder) decodeBlockBits(br *bitReader, out []byte) (*block, error) {
	level := d.level
	if level == 0 {
		level = 9
	}
	if m := uint64(br.bits(24))<<24 | uint64(br.bits(24)); m != blockMagic {
		return nil, errors.New("no block magic")
	}
	b := &block{crc: br.bits(32)}
	if br.bits(1) != 0 {
		return nil, errRandomised
	}
	origPtr := int(br.bits(24))
	if origPtr >= 10+100000*level { // libbzip2 checks this as it reads it
		return nil, fmt.Errorf("origin pointer %d beyond any level-%d block", origPtr, level)
	}
	maxN := 100000 * level
	var seqToUnseq [256]byte
	inUse := 0
	used16 := br.bits(16)
	for i := 0; i < 16; i++ {
		if used16&(0x8000>>i) != 0 {
			u := br.bits(16)
			for j := 0; j < 16; j++ {
				if u&(0x8000>>j) != 0 {
					seqToUnseq[inUse] = byte(i*16 + j)
					inUse++
				}
			}
		}
	}
	if inUse == 0 {
		return nil, errors.New("no symbols in use")
	}
	alphaSize := inUse + 2
	nGroups := int(br.bits(3))
	if nGroups < 2 || nGroups > 6 {
		return nil, fmt.Errorf("%d Huffman groups", nGroups)
	}
	nSel := int(br.bits(15))
	if nSel < 1 {
		return nil, errors.New("no selectors")
	}
	var mtfGroups [6]uint8
	for i := range mtfGroups {
		mtfGroups[i] = uint8(i)
	}
	d.sel = d.sel[:0]
	for i := 0; i < nSel; i++ {
		j := 0
		for br.bits(1) == 1 {
			j++
			if j >= nGroups {
				return nil, errors.New("bad selector")
			}
		}
		v := mtfGroups[j]
		copy(mtfGroups[1:j+1], mtfGroups[:j])
		mtfGroups[0] = v
		if i < 18002 { // libbzip2 ignores selectors past BZ_MAX_SELECTORS
			d.sel = append(d.sel, v)
		}
		if br.past() {
			return nil, errTruncated
		}
	}
	lengths := make([]uint8, alphaSize)
	for g := 0; g < nGroups; g++ {
		curr := int(br.bits(5))
		for s := 0; s < alphaSize; s++ {
			for {
				if curr < 1 || curr > 20 {
					return nil, errors.New("bad code length")
				}
				if br.bits(1) == 0 {
					break
				}
				if br.bits(1) == 0 {
					curr++
				} else {
					curr--
				}
			}
			lengths[s] = uint8(curr)
		}
		if err := d.trees[g].build(lengths); err != nil {
			return nil, err
		}
	}
	// Symbols: RUNA/RUNB runs of the front MTF byte, MTF indexes, EOB.
	if cap(d.tt) < maxBlock {
		d.tt = make([]uint32, maxBlock)
	}
	tt := d.tt[:maxN]
	k := 0 // symbols in tt
	var counts [256]int
	// The move-to-front list holds the bytes themselves.
	var mtf [256]byte
	copy(mtf[:], seqToUnseq[:])
	eob := uint16(inUse + 1)
	run, runShift := 0, uint(0)
	// The loop below is most of a block's decoding: the bit reader's
	// state is kept in locals (written back before anything else reads
	// it), and each group's table is looked up once per 50 symbols.
	acc, nb, pos, data := br.acc, br.n, br.pos, br.data
	var tree *huffman
	for g, left := 0, 0; ; left-- {
		if left == 0 {
			br.acc, br.n, br.pos = acc, nb, pos
			if br.past() { // checked once a group: past the end, zeros
				return nil, errTruncated
			}
			if g >= len(d.sel) {
				return nil, errors.New("ran out of selectors")
			}
			tree = &d.trees[d.sel[g]]
			left = 50
			g++
		}
		var sym uint16
		if e := tree.table[acc>>(64-lookupBits)]; e != 0 {
			l := uint(e & 31)
			acc <<= l
			nb -= l
			sym = e >> 5
			if nb < 32 {
				var ok bool
				if acc, nb, pos, ok = refill8(data, pos, acc, nb); !ok {
					br.acc, br.n, br.pos = acc, nb, pos
					br.fill()
					acc, nb, pos = br.acc, br.n, br.pos
				}
			}
		} else {
			br.acc, br.n, br.pos = acc, nb, pos
			var err error
			if sym, err = tree.decode(br); err != nil {
				return nil, err
			}
			acc, nb, pos = br.acc, br.n, br.pos
		}
		if sym <= 1 { // RUNA, RUNB
			if runShift > 20 {
				br.acc, br.n, br.pos = acc, nb, pos
				return nil, errors.New("run too long")
			}
			run += int(sym+1) << runShift
			runShift++
			continue
		}
		if run > 0 {
			if k+run > maxN {
				br.acc, br.n, br.pos = acc, nb, pos
				return nil, fmt.Errorf("block longer than level %d allows", level)
			}
			c := mtf[0]
			counts[c] += run
			for i := k; i < k+run; i++ {
				tt[i] = uint32(c)
			}
			k += run
			run, runShift = 0, 0
		}
		if sym == eob {
			break
		}
		idx := int(sym - 1)
		if idx >= inUse {
			br.acc, br.n, br.pos = acc, nb, pos
			return nil, errors.New("bad MTF index")
		}
		var c byte
		switch {
		case idx < 8: // most indexes: the move is done in one word
			x := binary.LittleEndian.Uint64(mtf[:8])
			sh := uint(idx) * 8
			c = byte(x >> sh)
			below := x & (1<<sh - 1)
			x = x&^(1<<(sh+8)-1) | below<<8 | uint64(c) // sh+8 = 64: none above
			binary.LittleEndian.PutUint64(mtf[:8], x)
		case idx < 16: // in two words: the first's top byte moves to the second
			x0 := binary.LittleEndian.Uint64(mtf[:8])
			x1 := binary.LittleEndian.Uint64(mtf[8:16])
			sh := uint(idx-8) * 8
			c = byte(x1 >> sh)
			below := x1 & (1<<sh - 1)
			x1 = x1&^(1<<(sh+8)-1) | below<<8 | x0>>56
			binary.LittleEndian.PutUint64(mtf[8:16], x1)
			binary.LittleEndian.PutUint64(mtf[:8], x0<<8|uint64(c))
		default:
			c = mtf[idx]
			copy(mtf[1:idx+1], mtf[:idx])
			mtf[0] = c
		}
		counts[c]++
		if k >= maxN {
			br.acc, br.n, br.pos = acc, nb, pos
			return nil, fmt.Errorf("block longer than level %d allows", level)
		}
		tt[k] = uint32(c)
		k++
	}
	br.acc, br.n, br.pos = acc, nb, pos
	if br.past() {
		return nil, errTruncated
	}
	tt = tt[:k]
	b.endBit = br.bitPos()
	n := len(tt)
	if origPtr >= n {
		return nil, fmt.Errorf("origin pointer %d outside the %d-byte block", origPtr, n)
	}
	b.n = n
	// Inverse BWT: T (in tt's high 24 bits) links every row to the one
	// after it in the original order; the block is the walk from the row
	// origPtr (walk.go).
	var cftab [256]int
	sum := 0
	for i := 0; i < 256; i++ {
		cftab[i] = sum
		sum += counts[i]
	}
	for i := 0; i < n; i++ {
		c := tt[i] & 0xff
		tt[cftab[c]] |= uint32(i) << 8
		cftab[c]++
	}
	if cap(d.raw) < maxBlock {
		d.raw = make([]byte, maxBlock)
	}
	raw := d.raw[:n]
	d.w.walk(tt, origPtr, raw)
	// Undo the initial run-length encoding (4 equal bytes and a count of
	// more), sized first: a block of long runs (up to ~46 MB from 900 kB)
	// is allocated once, exactly, and one past the caller's bound is
	// refused before it is written.
	size, tooLarge := rle1Size(raw, d.maxOut)
	if tooLarge {
		return nil, errTooLarge
	}
	if size > cap(out) {
		out = make([]byte, size)
	}
	out = out[:size]
	// Four equal bytes at the very end want a count byte the block does
	// not have: libbzip2 reads on past the block and fails with
	// BZ_DATA_ERROR once it gets there (after emitting a run whose length
	// is the block's first byte).
	var crc uint32
	b.pendingRun, crc = rle1Expand(raw, out)
	b.out = out
	if crc != b.crc {
		b.crcErr = fmt.Errorf("block CRC mismatch (stored %08x, computed %08x)", b.crc, crc)
		if !d.lazyCRC {
			return nil, b.crcErr
		}
	}
	return b, nil
}

// The initial run-length encoding: four equal bytes are followed by a
// count (0–255) of more. Scanning from a point where no run is pending,
// the first four equal bytes are always a run (a count byte ends one and
// starts the scan afresh), so the expansion copies what lies between
// runs in bulk and fills the runs.

// nextRun returns the first i ≥ s where raw[i:i+4] are four equal bytes,
// or len(raw) when there is none.
func nextRun(raw []byte, s int) int {
	i := s
	for ; i+11 <= len(raw); i += 8 {
		x := binary.LittleEndian.Uint64(raw[i:])
		z := (x ^ binary.LittleEndian.Uint64(raw[i+1:])) |
			(x ^ binary.LittleEndian.Uint64(raw[i+2:])) |
			(x ^ binary.LittleEndian.Uint64(raw[i+3:]))
		// A zero byte of z at lane j: raw[i+j:i+j+4] are equal. The
		// lowest flagged lane is the first such j.
		if m := (z - 0x0101010101010101) &^ z & 0x8080808080808080; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i+4 <= len(raw); i++ {
		if c := raw[i]; raw[i+1] == c && raw[i+2] == c && raw[i+3] == c {
			return i
		}
	}
	return len(raw)
}

// rle1Size returns how many bytes raw expands to, and whether, with
// maxOut > 0, a run would take the output past maxOut (the bound is
// checked where a run is added, as the decoder always has).
func rle1Size(raw []byte, maxOut int) (int, bool) {
	k := 0
	for s := 0; s < len(raw); {
		i := nextRun(raw, s)
		if i+4 >= len(raw) { // no run, or one without its count
			return k + len(raw) - s, false
		}
		k += i + 4 - s
		c := int(raw[i+4])
		if maxOut > 0 && k+c > maxOut {
			return 0, true
		}
		k += c
		s = i + 5
	}
	return k, false
}

// rle1Expand writes raw's expansion to out, which rle1Size sized, and
// returns its CRC and whether raw ends in four equal bytes without their
// count. The CRC is taken as the bytes are written, while they are in
// cache; a longest run of zeros (the free space of a disk image) is
// taken in four table lookups (crcZeros255).
func rle1Expand(raw, out []byte) (pending bool, crc uint32) {
	k := 0
	crc = ^uint32(0)
	for s := 0; s < len(raw); {
		i := nextRun(raw, s)
		if i+4 >= len(raw) {
			crc = crcUpdate(crc, out[k:k+copy(out[k:], raw[s:])])
			return i+4 == len(raw), ^crc
		}
		n := copy(out[k:], raw[s:i+4])
		crc = crcUpdate(crc, out[k:k+n])
		k += n
		if c := int(raw[i+4]); c > 0 {
			fill(out[k:k+c], raw[i])
			if c == 255 && raw[i] == 0 {
				crc = crcZeros255(crc)
			} else {
				crc = crcUpdate(crc, out[k:k+c])
			}
			k += c
		}
		s = i + 5
	}
	return false, ^crc
}

// zeros255 is the CRC's state change for 255 zero bytes, which is linear:
// the XOR of what each byte of the state becomes, one table per byte.
var zeros255 = sync.OnceValue(func() *[4][256]uint32 {
	var t [4][256]uint32
	for j := range 4 {
		for b := range 256 {
			s := uint32(b) << (8 * j)
			for range 255 {
				s = s<<8 ^ crcTable[s>>24]
			}
			t[j][b] = s
		}
	}
	return &t
})

// crcZeros255 advances the CRC state crc over 255 zero bytes.
func crcZeros255(crc uint32) uint32 {
	t := zeros255()
	return t[0][crc&0xff] ^ t[1][crc>>8&0xff] ^ t[2][crc>>16&0xff] ^ t[3][crc>>24]
}

// fill sets every byte of s to c.
func fill(s []byte, c byte) {
	if c == 0 {
		clear(s)
		return
	}
	s[0] = c
	for i := 1; i < len(s); i *= 2 {
		copy(s[i:], s[:i])
	}
}

// crc32 is bzip2's CRC-32 of b (polynomial 0x04c11db7, MSB first, inverted
// in and out), eight bytes at a time.
func crc32(b []byte) uint32 { return ^crcUpdate(^uint32(0), b) }

// crcUpdate advances the CRC state crc (not inverted) over b.
func crcUpdate(crc uint32, b []byte) uint32 {
	for len(b) >= 8 {
		crc ^= uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		crc = crcTables[7][crc>>24] ^ crcTables[6][crc>>16&0xff] ^ crcTables[5][crc>>8&0xff] ^ crcTables[4][crc&0xff] ^
			crcTables[3][b[4]] ^ crcTables[2][b[5]] ^ crcTables[1][b[6]] ^ crcTables[0][b[7]]
		b = b[8:]
	}
	for _, c := range b {
		crc = crc<<8 ^ crcTable[byte(crc>>24)^c]
	}
	return crc
}

// crcTables[k][b] is the CRC contribution of byte b followed by k zero bytes.
var crcTables = func() (t [8][256]uint32) {
	t[0] = crcTable
	for k := 1; k < 8; k++ {
		for b := range 256 {
			v := t[k-1][b]
			t[k][b] = v<<8 ^ t[0][v>>24]
		}
	}
	return
}()

// crcTable is bzip2's CRC-32 (polynomial 0x04c11db7, MSB first).
var crcTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for k := 0; k < 8; k++ {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04c11db7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return
}()
