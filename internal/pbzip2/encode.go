package pbzip2

import (
	"encoding/binary"
	"math/bits"
	"sync"
)

// The encoder writes exactly the bytes libbzip2 1.0.x writes at level 9
// (900k blocks, default work factor): update_engine's delta_generator
// compresses every payload blob with BZ2_bzBuffToBuffCompress(…, 9, 0, 0),
// and a payload that is to be byte-identical with the reference must make
// the same choices at every step. Each stage below follows libbzip2's:
//
//   - run-length stage 1 (runs of 4–255 equal bytes become 4 bytes and a
//     count) and the rule for where a block ends (encode.go);
//   - the Burrows–Wheeler transform over cyclic rotations. Its order is
//     unique when the block is not a repetition of a shorter string, so a
//     fast suffix sort gives libbzip2's result (rotsort.go); for a periodic
//     block, where equal rotations make the order (and so the origin
//     pointer) depend on the sorting algorithm, libbzip2's own sort is
//     reproduced step by step (libsort.go);
//   - move-to-front with zero-run coding, the Huffman code lengths with
//     their 17-bit limit, the choice and four refinement passes of the
//     coding tables and selectors (huffman.go);
//   - the block and stream CRCs.

// Level-9 constants, as libbzip2 defines them.
const (
	blockSize100k = 9
	// nblockMax is nblockMAX: a block takes no more run-length pairs once it
	// holds this many bytes; the pair being added may take it up to 4
	// bytes further, the final one 5 more.
	nblockMax = 100000*blockSize100k - 19
	// overshoot is BZ_N_OVERSHOOT: libbzip2's sort reads this far past the
	// block's end, where the block's first bytes are repeated.
	overshoot = 34
	blockCap  = 100000 * blockSize100k
)

// Mode says how the input reached libbzip2, which matters in one case: a
// block that fills up exactly as the input ends.
type Mode int

const (
	// Buffer is BZ2_bzBuffToBuffCompress: all input at once, finished in
	// one call (what update_engine does for payload blobs).
	Buffer Mode = iota
	// Stream is the bzip2 command and BZ2_bzWrite: input fed in pieces,
	// then finished. When a block fills with the input's last run still
	// pending, that run starts a block of its own.
	Stream
)

// Encoder compresses at level 9 exactly as libbzip2 does. Its buffers
// (about 12 MB) are reused from one call to the next, so an Encoder per
// goroutine allocates nothing per block. An Encoder is not safe for
// concurrent use.
type Encoder struct {
	block []byte  // run-length stage 1 output, plus overshoot
	bwt   []byte  // its Burrows–Wheeler transform
	ptr   []int32 // sorted rotation starts (periodic blocks only)
	mtfv  []uint16
	sel   []byte // selectors
	selM  []byte // their move-to-front values
	rot   rotSorter
	lib   *libSorter // allocated on the first periodic block
	bw    bitWriter

	nblock   int
	inUse    [256]bool
	combined uint32
	huff     huffState
}

// NewEncoder returns an encoder with its buffers allocated.
func NewEncoder() *Encoder {
	return &Encoder{
		block: make([]byte, blockCap+overshoot),
		bwt:   make([]byte, blockCap),
		ptr:   make([]int32, blockCap),
		mtfv:  make([]uint16, blockCap+1),
		sel:   make([]byte, blockCap/groupSize+1),
		selM:  make([]byte, blockCap/groupSize+1),
	}
}

// Encode appends to dst the bzip2 stream of src that libbzip2 writes at
// level 9 when given src as mode says, and returns the extended slice.
func (e *Encoder) Encode(dst, src []byte, mode Mode) []byte {
	e.bw = bitWriter{out: dst}
	e.combined = 0
	e.bw.bytes('B', 'Z', 'h', '0'+blockSize100k)
	pos := 0
	for pos < len(src) {
		start := pos
		pos = e.fill(src, pos, mode)
		crc := crc32(src[start:pos])
		e.combined = (e.combined<<1 | e.combined>>31) ^ crc
		e.writeBlock(crc)
	}
	e.bw.bytes(0x17, 0x72, 0x45, 0x38, 0x50, 0x90)
	e.bw.bits(32, e.combined)
	return e.bw.finish()
}

// Compress returns the bzip2 stream libbzip2 writes for src at level 9
// when given it as mode says, using a pooled encoder.
func Compress(src []byte, mode Mode) []byte {
	e := encoders.Get().(*Encoder)
	defer encoders.Put(e)
	return e.Encode(nil, src, mode)
}

// encoders are reused by Compress: each holds about 12 MB of buffers.
var encoders = sync.Pool{New: func() any { return NewEncoder() }}

// pair returns the run-length pair that starts at src[pos]: the byte and
// how many times it repeats, at most 255.
func pair(src []byte, pos int) (byte, int) {
	c := src[pos]
	end := min(len(src), pos+255)
	n := 1
	for pos+n < end && src[pos+n] == c {
		n++
	}
	return c, n
}

// fill builds the next block from src[pos:] by run-length stage 1 and
// returns where the block's input ends. The pairs an input splits into do
// not depend on block boundaries (a pair ends at a different byte or at
// 255), so a block is a whole number of pairs. After each pair that is not
// the input's last, libbzip2 checks whether the block is full; if so the
// block ends, except in Buffer mode when all that is left is one last byte
// (its pair joins this block when the stream is finished).
func (e *Encoder) fill(src []byte, pos int, mode Mode) int {
	b := e.block[:blockCap]
	n := 0
	for pos < len(src) {
		// Bytes that differ from the next one are pairs of one byte:
		// copied in bulk, up to the block limit.
		if k := nextRepeat(src, pos); k > pos {
			m := min(k-pos, nblockMax-n)
			copy(b[n:], src[pos:pos+m])
			n += m
			pos += m
		} else {
			c, run := pair(src, pos)
			switch run {
			case 2:
				b[n], b[n+1] = c, c
				n += 2
			case 3:
				b[n], b[n+1], b[n+2] = c, c, c
				n += 3
			default:
				b[n], b[n+1], b[n+2], b[n+3], b[n+4] = c, c, c, c, byte(run-4)
				n += 5
			}
			pos += run
		}
		if pos == len(src) || n < nblockMax {
			continue
		}
		if mode == Buffer && pos+1 == len(src) {
			b[n] = src[pos]
			n++
			pos++
		}
		break
	}
	e.nblock = n
	clear(e.inUse[:])
	for _, c := range b[:n] {
		e.inUse[c] = true
	}
	return pos
}

// nextRepeat returns the first i ≥ pos with src[i] == src[i+1], or
// len(src), comparing 8 neighbours at a time (a zero byte of w^(w>>8)).
func nextRepeat(src []byte, pos int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := pos
	for ; i+9 <= len(src); i += 8 {
		x := binary.LittleEndian.Uint64(src[i:]) ^ binary.LittleEndian.Uint64(src[i+1:])
		if z := (x - ones) &^ x & highs; z != 0 {
			return i + bits.TrailingZeros64(z)>>3
		}
	}
	for ; i+1 < len(src); i++ {
		if src[i] == src[i+1] {
			return i
		}
	}
	return len(src)
}

// writeBlock sorts, transforms and writes the block in e.block[:e.nblock].
func (e *Encoder) writeBlock(crc uint32) {
	n := e.nblock
	bwt := e.bwt[:n]
	origPtr, ok := e.rot.sort(e.block[:n], bwt)
	if !ok {
		if e.lib == nil {
			e.lib = newLibSorter()
		}
		ptr := e.ptr[:n]
		e.lib.sort(e.block[:n+overshoot], n, ptr)
		origPtr = -1
		for i, p := range ptr {
			if p == 0 && origPtr < 0 {
				origPtr = i
			}
			j := int(p) - 1
			if j < 0 {
				j += n
			}
			bwt[i] = e.block[j]
		}
	}
	e.bw.bytes(0x31, 0x41, 0x59, 0x26, 0x53, 0x59)
	e.bw.bits(32, crc)
	e.bw.bits(1, 0) // not randomised
	e.bw.bits(24, uint32(origPtr))
	nMTF := e.generateMTF()
	e.sendMTF(nMTF)
}

// bitWriter packs bits MSB first, as libbzip2's bsW.
type bitWriter struct {
	out  []byte
	acc  uint64
	nacc uint
}

func (w *bitWriter) bits(n uint, v uint32) {
	w.acc = w.acc<<n | uint64(v)
	w.nacc += n
	if w.nacc >= 32 {
		w.nacc -= 32
		x := uint32(w.acc >> w.nacc)
		w.out = append(w.out, byte(x>>24), byte(x>>16), byte(x>>8), byte(x))
	}
}

func (w *bitWriter) bytes(b ...byte) {
	for _, c := range b {
		w.bits(8, uint32(c))
	}
}

// finish pads the last byte with zero bits and returns the output.
func (w *bitWriter) finish() []byte {
	for w.nacc >= 8 {
		w.nacc -= 8
		w.out = append(w.out, byte(w.acc>>w.nacc))
	}
	if w.nacc > 0 {
		w.out = append(w.out, byte(w.acc<<(8-w.nacc)))
		w.nacc = 0
	}
	return w.out
}
