// Package pbzip2 reads and writes bzip2.
//
// Writing (Encoder, Compress) gives exactly the bytes libbzip2 writes at
// level 9, which is what makes augen's payloads byte-identical to
// delta_generator's; see encode.go.
//
// Reading decodes bzip2 streams on several cores: bzip2 blocks
// start with a 48-bit magic at any bit offset and are independent, so
// every place the magic appears is handed to a worker, and the reader
// follows the real chain of blocks in order: each block decodes to its own
// end bit, where the next magic must be; a magic found inside a block's
// data is skipped. Every block CRC and every stream CRC is checked,
// concatenated streams (pbzip2, lbzip2 -n) work, and memory is bounded by
// the number of blocks in flight. Errors name the block and where it is.
package pbzip2

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/augen-project/augen"
)

// ErrCorrupt wraps every error about malformed data.
var ErrCorrupt = augen.Rejection("bzip2: corrupt data")

const (
	readChunk = 4 << 20
	lookahead = 5 << 20 / 4 // compressed bytes after a magic a worker gets
)

type job struct {
	cand  candidate // absolute bit
	data  []byte
	start uint64 // absolute bit of data[0]
	done  chan struct{}
	res   *block
	err   error
}

// Reader decodes a bzip2 stream.
type Reader struct {
	src     io.Reader
	workers int
	work    chan *job
	wg      sync.WaitGroup

	buf     []byte // compressed bytes from absolute byte base
	base    uint64
	eof     bool
	scanned uint64 // candidates before this absolute bit are known
	cands   []candidate
	lastBit uint64 // highest candidate bit ever queued (+1; 0 = none)
	jobs    map[uint64]*job
	queued  []*job // dispatched, in candidate order

	expect   uint64 // absolute bit where the next structure starts
	inStream bool
	level    int
	combined uint32
	streams  int
	blocks   int

	cur  []byte
	prev []byte // the consumed block output, recycled on the next block
	big  bool   // the last block decoded to more than bigBlock
	err  error
	pool sync.Pool
}

// NewReader starts decoding r with workers goroutines (0: GOMAXPROCS).
func NewReader(r io.Reader, workers int) *Reader {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	z := &Reader{src: r, workers: workers, work: make(chan *job), jobs: map[uint64]*job{}}
	for range workers {
		z.wg.Add(1)
		go func() {
			defer z.wg.Done()
			d := &decoder{}
			for j := range z.work {
				out, _ := z.pool.Get().([]byte)
				j.res, j.err = d.decodeBlock(j.data, j.cand.bit-j.start, out)
				close(j.done)
			}
		}()
	}
	return z
}

// Close stops the workers. It does not close the source.
func (z *Reader) Close() error {
	if z.work != nil {
		for _, j := range z.queued {
			<-j.done
		}
		close(z.work)
		z.wg.Wait()
		z.work = nil
	}
	return nil
}

func (z *Reader) Read(p []byte) (int, error) {
	for len(z.cur) == 0 {
		if z.err != nil {
			return 0, z.err
		}
		if err := z.next(); err != nil {
			z.err = err
			if err != io.EOF {
				z.Close()
			}
			return 0, err
		}
	}
	n := copy(p, z.cur)
	z.cur = z.cur[n:]
	return n, nil
}

func (z *Reader) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// where names a compressed position for error messages.
func where(bit uint64) string {
	if bit%8 == 0 {
		return fmt.Sprintf("compressed byte %d", bit/8)
	}
	return fmt.Sprintf("compressed byte %d (bit %d)", bit/8, bit%8)
}

// fill reads more compressed data and scans it.
func (z *Reader) fill() error {
	if z.eof {
		return nil
	}
	// Drop what no structure or job needs any more.
	keep := z.expect / 8
	for _, j := range z.queued {
		keep = min(keep, j.start/8)
	}
	if keep > z.base {
		z.buf = z.buf[keep-z.base:]
		z.base = keep
	}
	chunk := make([]byte, readChunk)
	n, err := io.ReadFull(z.src, chunk)
	z.buf = append(z.buf, chunk[:n]...)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		z.eof = true
	} else if err != nil {
		return err
	}
	end := (z.base + uint64(len(z.buf))) * 8
	// A magic straddling the old end is found now: rescan its 47 bits.
	from := z.scanned
	if from >= 47 {
		from -= 47
	}
	for _, c := range scan(z.buf, max(from, z.base*8)-z.base*8, end-z.base*8) {
		c.bit += z.base * 8
		if c.bit+1 > z.lastBit { // the overlap rescans what was found already
			z.cands = append(z.cands, c)
			z.lastBit = c.bit + 1
		}
	}
	z.scanned = end
	return nil
}

// dispatch hands candidates to workers, in order, while few are in flight
// and their data is (or can no longer become) complete.
func (z *Reader) dispatch() {
	for len(z.cands) > 0 && len(z.queued) < z.window() {
		c := z.cands[0]
		if c.bit < z.expect {
			z.cands = z.cands[1:] // inside a block already decoded
			continue
		}
		if c.end {
			z.cands = z.cands[1:]
			continue
		}
		endByte := z.base + uint64(len(z.buf))
		if c.bit/8+lookahead > endByte && !z.eof {
			return
		}
		startByte := c.bit / 8
		j := &job{cand: c, start: startByte * 8, data: z.buf[startByte-z.base:], done: make(chan struct{})}
		z.cands = z.cands[1:]
		z.jobs[c.bit] = j
		z.queued = append(z.queued, j)
		z.work <- j
	}
}

// take waits for the job at bit, dispatching and reading as needed.
func (z *Reader) take(bit uint64) (*job, error) {
	for {
		// Keep every worker busy: top the window up before waiting, not
		// only when it has run dry.
		if err := z.topUp(); err != nil {
			return nil, err
		}
		if j := z.jobs[bit]; j != nil {
			<-j.done
			// Everything queued before it was a false magic: drop it.
			for len(z.queued) > 0 {
				q := z.queued[0]
				z.queued = z.queued[1:]
				delete(z.jobs, q.cand.bit)
				if q == j {
					break
				}
				<-q.done
				z.recycle(q)
			}
			return j, nil
		}
		before := len(z.queued)
		z.dispatch()
		if len(z.queued) == before {
			if z.eof {
				return nil, z.corrupt("no block at %s", where(bit))
			}
			if err := z.fill(); err != nil {
				return nil, err
			}
		}
	}
}

// topUp dispatches candidates until the window is full, reading more input
// while a candidate waits only for its lookahead.
func (z *Reader) topUp() error {
	for {
		z.dispatch()
		if z.eof || len(z.queued) >= z.window() || len(z.cands) == 0 {
			return nil
		}
		if err := z.fill(); err != nil {
			return err
		}
	}
}

// window is how many blocks may be in flight: two a worker, so that none
// waits for the reader; one a worker while blocks decode to more than
// bigBlock (long runs: up to ~46 MB each), which bounds memory instead.
func (z *Reader) window() int {
	if z.big {
		return z.workers
	}
	return 2 * z.workers
}

// bigBlock is the output above which a block counts as big for window.
const bigBlock = 4 << 20

func (z *Reader) recycle(j *job) {
	if j.res != nil && cap(j.res.out) > 0 {
		//lint:ignore SA6002 one small allocation per 900 kB block is fine
		z.pool.Put(j.res.out[:0])
	}
}

// bitsAt reads n (≤ 48) bits at an absolute bit, reading more input when
// needed; ok is false at the end of the input.
func (z *Reader) bitsAt(bit uint64, n uint) (uint64, bool, error) {
	for (bit+uint64(n)+7)/8 > z.base+uint64(len(z.buf)) {
		if z.eof {
			return 0, false, nil
		}
		if err := z.fill(); err != nil {
			return 0, false, err
		}
	}
	return at48(z.buf, bit-z.base*8) >> (48 - n), true, nil
}

// next produces the next block's output into z.cur.
func (z *Reader) next() error {
	for {
		if !z.inStream {
			hdr, ok, err := z.bitsAt(z.expect, 32)
			if err != nil {
				return err
			}
			if !ok {
				if z.streams == 0 || z.base*8+uint64(len(z.buf))*8 > z.expect {
					if z.streams == 0 {
						return z.corrupt("not a bzip2 stream (%d bytes)", z.base+uint64(len(z.buf)))
					}
					return z.corrupt("%d stray bytes after the last bzip2 stream at %s", z.base+uint64(len(z.buf))-z.expect/8, where(z.expect))
				}
				return io.EOF
			}
			if hdr>>8 != 0x425a68 || hdr&0xff < '1' || hdr&0xff > '9' {
				if z.streams == 0 {
					return z.corrupt("not a bzip2 stream (no BZh header)")
				}
				return z.corrupt("unexpected data after bzip2 stream %d at %s", z.streams, where(z.expect))
			}
			z.level = int(hdr&0xff - '0')
			z.inStream, z.combined = true, 0
			z.streams++
			z.expect += 32
			continue
		}
		magic, ok, err := z.bitsAt(z.expect, 48)
		if err != nil {
			return err
		}
		if !ok {
			return z.corrupt("truncated: the data ends inside stream %d, after block %d, at %s", z.streams, z.blocks, where(z.expect))
		}
		switch magic {
		case endMagic:
			crc, ok, err := z.bitsAt(z.expect+48, 32)
			if err != nil {
				return err
			}
			if !ok {
				return z.corrupt("truncated: the data ends inside the end of stream %d", z.streams)
			}
			if uint32(crc) != z.combined {
				return z.corrupt("stream %d: combined CRC mismatch (stored %08x, computed %08x) at %s", z.streams, uint32(crc), z.combined, where(z.expect))
			}
			z.expect = (z.expect + 80 + 7) / 8 * 8
			z.inStream = false
			continue
		case blockMagic:
			j, err := z.take(z.expect)
			if err != nil {
				return err
			}
			if errors.Is(j.err, errTruncated) && !z.eof {
				// A block longer than the data its worker had: decode it
				// again here, with everything up to the end of the input.
				for !z.eof {
					if err := z.fill(); err != nil {
						return err
					}
				}
				d := &decoder{}
				j.res, j.err = d.decodeBlock(z.buf[j.start/8-z.base:], j.cand.bit-j.start, nil)
			}
			z.blocks++
			if errors.Is(j.err, errTruncated) {
				return z.corrupt("truncated: the data ends inside block %d (stream %d), which starts at %s", z.blocks, z.streams, where(j.cand.bit))
			}
			if j.err != nil {
				return z.corrupt("block %d (stream %d) at %s: %v", z.blocks, z.streams, where(j.cand.bit), j.err)
			}
			if j.res.pendingRun {
				return z.corrupt("block %d (stream %d) at %s ends in four equal bytes without their count (libbzip2: BZ_DATA_ERROR)", z.blocks, z.streams, where(j.cand.bit))
			}
			if j.res.n > z.level*100000 {
				return z.corrupt("block %d at %s holds %d bytes, more than level %d allows", z.blocks, where(j.cand.bit), j.res.n, z.level)
			}
			z.combined = (z.combined<<1 | z.combined>>31) ^ j.res.crc
			z.expect = j.res.endBit + j.start
			if cap(z.prev) > 0 {
				//lint:ignore SA6002 one small allocation per 900 kB block is fine
				z.pool.Put(z.prev[:0])
			}
			z.cur, z.prev = j.res.out, j.res.out
			z.big = len(j.res.out) > bigBlock
			return nil
		default:
			return z.corrupt("stream %d: expected a block or the end of the stream at %s, after block %d", z.streams, where(z.expect), z.blocks)
		}
	}
}
