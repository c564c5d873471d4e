package pbzip2

import (
	"errors"
	"fmt"
	"sync"
)

// bzChunk is BZ_MAX_UNUSED: BZ2_bzRead hands libbzip2 its FILE's bytes
// this many at a time, and only when the last chunk is used up.
const bzChunk = 5000

// blockSlack is how far a block's output may run past what a stream may
// give in all before BZRead refuses to decode it.
const blockSlack = 1 << 20

// spares are output buffers of closed streams, for the next ones.
var spares sync.Pool

// BZRead is one bzip2 stream read the way bspatch reads each of a patch's
// three streams: libbzip2's BZ2_bzRead on a FILE that starts where the
// stream starts and runs to the end of the patch. It is exact in what
// libbzip2 returns, and when:
//
//   - nothing is parsed before the first read of at least one byte, and
//     nothing past what the reads need;
//   - a block's CRC is checked once all its output has been read, so a bad
//     CRC in a block read only in part goes unnoticed;
//   - a read that ends exactly at a block's end goes on, as libbzip2 does,
//     to parse what follows with the input it already has (up to the end
//     of its current 5000-byte chunk): the next block's header and codes,
//     or the end-of-stream marker and its combined CRC;
//   - a read past the end of the stream gets fewer bytes (bspatch: "Corrupt
//     patch"): concatenated streams are not read on;
//   - a block ending in four equal bytes without their count fails when
//     read past those bytes.
//
// Where libbzip2 would not yet have failed but augen cannot tell what it
// would return (a read that stops inside the garbage run libbzip2 emits
// after such a block, an error found past libbzip2's input chunk), the
// error matches ErrStricterThanLibbzip2, and Close reports an error that
// libbzip2 might never have reached.
type BZRead struct {
	data  []byte // the stream, to the end of the patch
	max   int    // output allowed in all
	total int    // output so far

	started bool
	bit     uint64 // where the next block or end marker starts
	fed     uint64 // bytes handed to the decompressor (chunks of bzChunk)
	cur     *block // the block being read, nil between blocks
	spare   []byte // the output buffer of blocks read before
	curPos  int
	ended   bool
	comb    uint32
	d       decoder
	err     error  // sticky
	errAt   uint64 // where the last error of next was certain, in bits
	late    error  // an error found after the reads were satisfied
	lateIn  bool   // late lies within the input libbzip2 had
}

// NewBZRead returns a reader of the stream at the start of data (which
// runs to the end of the patch), producing at most max bytes in all.
func NewBZRead(data []byte, max int) *BZRead {
	s := &BZRead{data: data, max: max}
	s.d.lazyCRC = true
	return s
}

func (s *BZRead) consumed() uint64 { return (s.bit + 7) / 8 }

// feedTo models the chunks libbzip2 has been handed once it consumed up
// to byte c: a new chunk is read only when the last one is used up.
func (s *BZRead) feedTo(c uint64) {
	for s.fed < c && s.fed < uint64(len(s.data)) {
		s.fed = min(s.fed+bzChunk, uint64(len(s.data)))
	}
}

// ReadFull fills p, or fails as bspatch does when BZ2_bzRead returns
// fewer bytes or an error. A read of nothing does nothing.
func (s *BZRead) ReadFull(p []byte) error {
	return s.ReadFunc(len(p), func(part []byte) error {
		p = p[copy(p, part):]
		return nil
	})
}

// ReadFunc is ReadFull of n bytes handed to fn in consecutive parts as
// they are decoded, so that a large read needs no buffer of its size: it
// is one read to the model (a block end met within it is not a read's
// end). A part is valid only during the call; an error from fn ends the
// read with that error.
func (s *BZRead) ReadFunc(n int, fn func(part []byte) error) error {
	if n <= 0 {
		return nil
	}
	if s.err != nil {
		return s.err
	}
	if s.late != nil {
		s.err = s.late
		return s.err
	}
	// A call starts by reading a chunk if the last one is used up.
	if s.consumed() == s.fed {
		s.feedTo(s.fed + 1)
	}
	if !s.started {
		if len(s.data) < 4 {
			return s.fail(fmt.Errorf("%w: the patch ends inside the bzip2 header (libbzip2: BZ_UNEXPECTED_EOF)", ErrCorrupt))
		}
		if err := checkHeader(s.data); err != nil {
			return s.fail(err)
		}
		s.started = true
		s.d.level = int(s.data[3] - '0')
		s.bit = 32
	}
	if n > s.max-s.total {
		return s.fail(fmt.Errorf("%w: a read of %d bytes past the %d the stream may give", ErrCorrupt, n, s.max))
	}
	for n > 0 {
		if s.cur == nil {
			if s.ended {
				return s.fail(fmt.Errorf("%w: the stream ends %d bytes into a read of %d more (libbzip2 does not read on into another stream)", ErrCorrupt, s.total, n))
			}
			if err := s.next(); err != nil {
				return s.fail(err)
			}
			continue
		}
		b := s.cur
		if s.curPos == len(b.out) {
			// Only a block with a pending run is left undone here.
			first := 0
			if len(b.out) > 0 {
				first = int(b.out[0])
			}
			if n <= first {
				return s.fail(fmt.Errorf("%w: a read past a block that ends in four equal bytes without their count (%w: libbzip2 returns %d more of them, then fails)", ErrCorrupt, ErrStricterThanLibbzip2, first))
			}
			return s.fail(fmt.Errorf("%w: a read past a block that ends in four equal bytes without their count (libbzip2: BZ_DATA_ERROR)", ErrCorrupt))
		}
		k := min(n, len(b.out)-s.curPos)
		if err := fn(b.out[s.curPos : s.curPos+k]); err != nil {
			s.err = err
			return err
		}
		s.curPos += k
		s.total += k
		n -= k
		if s.curPos < len(b.out) || b.pendingRun {
			continue
		}
		// The block's last byte was read: libbzip2 checks its CRC now
		// and goes on parsing with the input it has.
		if b.crcErr != nil {
			return s.fail(fmt.Errorf("%w: %w", ErrCorrupt, b.crcErr))
		}
		s.comb = (s.comb<<1 | s.comb>>31) ^ b.crc
		s.cur = nil
		if n == 0 {
			s.eager()
		}
	}
	return nil
}

// next parses the block or end-of-stream marker at s.bit, with as much
// input as it needs, and notes where an error was found in s.d.errBit.
func (s *BZRead) next() error {
	s.errAt = s.bit + 80 // a marker is known bad once it is read whole
	switch at48(s.data, s.bit) {
	case blockMagic:
		// A block may hold more than the reads will take (libbzip2 gives
		// what is read and never looks at the rest): up to blockSlack
		// more is decoded; a block larger still is refused.
		s.d.maxOut = s.max - s.total + blockSlack
		// The last block's output, all read, is reused: a stream of many
		// large blocks costs one block's memory.
		if s.spare == nil {
			if b, ok := spares.Get().(*[]byte); ok {
				s.spare = *b
			}
		}
		b, err := s.d.decodeBlock(s.data, s.bit, s.spare[:0])
		s.d.maxOut = 0
		if b != nil {
			s.spare = b.out
		}
		s.errAt = s.d.errBit + 24 // a code is known bad up to 20 bits on
		if err == errTruncated {
			return fmt.Errorf("%w: the patch ends inside a block (libbzip2: BZ_UNEXPECTED_EOF)", ErrCorrupt)
		}
		if err == errTooLarge {
			return fmt.Errorf("%w: a block decodes to more than %d bytes past what the stream may give (%d) (%w: libbzip2 decodes it as far as it is read)", ErrCorrupt, blockSlack, s.max, ErrStricterThanLibbzip2)
		}
		if err != nil {
			return fmt.Errorf("%w: block at %s: %w", ErrCorrupt, where(s.bit), err)
		}
		s.cur, s.curPos = b, 0
		s.bit = b.endBit
	case endMagic:
		if (s.bit+80+7)/8 > uint64(len(s.data)) {
			return fmt.Errorf("%w: the patch ends inside the end-of-stream marker (libbzip2: BZ_UNEXPECTED_EOF)", ErrCorrupt)
		}
		if crc := uint32(at48(s.data, s.bit+48) >> 16); crc != s.comb {
			return fmt.Errorf("%w: stream CRC mismatch (stored %08x, computed %08x)", ErrCorrupt, crc, s.comb)
		}
		s.bit += 80
		s.ended = true
	default:
		if prefixOfMagic(s.data, s.bit) {
			return fmt.Errorf("%w: the patch ends between blocks (libbzip2: BZ_UNEXPECTED_EOF)", ErrCorrupt)
		}
		return fmt.Errorf("%w: expected a block or the end of the stream at %s", ErrCorrupt, where(s.bit))
	}
	s.feedTo(s.consumed())
	return nil
}

// eager is libbzip2 going on, after a read that ended exactly at a block's
// end, to parse what follows with the input already handed to it.
func (s *BZRead) eager() {
	fed := s.fed
	saved := *s
	err := s.next()
	if err == nil {
		end := s.bit
		if s.cur != nil {
			end = s.cur.endBit
		}
		if end <= fed*8 {
			return // parsed whole within the chunk, as libbzip2 did
		}
		// libbzip2 stopped partway, waiting for input: the same parse
		// happens again on the next read.
		*s = saved
		return
	}
	// Where the error lies decides whether libbzip2 saw it already.
	at := s.errAt
	*s = saved
	s.late = err
	s.lateIn = at <= fed*8
}

// Close reports an error libbzip2 met, or may have met, after the last
// read was satisfied: nil when there was none.
func (s *BZRead) Close() error {
	if s.spare != nil {
		// The output buffer goes to the next stream read.
		b := s.spare[:0]
		spares.Put(&b)
		s.spare, s.cur = nil, nil
	}
	if s.err != nil || s.late == nil {
		return nil
	}
	if s.lateIn {
		return s.late
	}
	return fmt.Errorf("%w (%w: libbzip2 had not read so far)", s.late, ErrStricterThanLibbzip2)
}

func (s *BZRead) fail(err error) error {
	s.err = err
	return err
}

// ErrIsStricter reports whether err is a refusal of input libbzip2 takes.
func ErrIsStricter(err error) bool { return errors.Is(err, ErrStricterThanLibbzip2) }
