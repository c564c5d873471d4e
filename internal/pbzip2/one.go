package pbzip2

import (
	"fmt"
	"sync"
)

// decoders are reused across calls: each holds a 3.6 MB BWT array.
var decoders = sync.Pool{New: func() any { return &decoder{} }}

// DecodeOne decodes blob, which must be exactly one bzip2 stream and
// nothing else, producing at most max bytes: a REPLACE_BZ blob as
// update_engine's BzipExtentWriter hands it to libbzip2 (all at once, then
// draining the output until none comes). It fails wherever libbzip2 fails
// there: a bad magic, block or stream CRC, a block that ends in four equal
// bytes with no count, input left after the end of the stream (the client
// aborts on it). It also refuses what libbzip2 takes but no encoder
// writes, with errors matching ErrStricterThanLibbzip2: a stream cut short
// (the client writes the complete blocks' output and ignores the rest),
// randomised blocks, over-subscribed Huffman codes. It runs on the calling
// goroutine: a payload's blobs are small, and callers decode many at once.
func DecodeOne(blob []byte, max int) ([]byte, error) {
	out, _, err := decodeStream(blob, max, nil)
	return out, err
}

// DecodeOneTo is DecodeOne that hands each block's output to emit as soon
// as the block is decoded and checked, instead of returning it all: it
// holds one block's output at a time (a large REPLACE_BZ is written while
// it is decoded, as BzipExtentWriter writes it). It returns the bytes
// emitted. On an error, what was emitted before it is the output of the
// complete blocks before the bad one.
func DecodeOneTo(blob []byte, max int, emit func([]byte) error) (int, error) {
	_, n, err := decodeStream(blob, max, emit)
	return n, err
}

// decodeStream decodes blob. Without emit it returns the whole output;
// with emit, each block's output goes to emit and n counts it.
func decodeStream(blob []byte, max int, emit func([]byte) error) (out []byte, n int, err error) {
	if err := checkHeader(blob); err != nil {
		return nil, 0, err
	}
	level := int(blob[3] - '0')
	bit := uint64(32)
	out = make([]byte, 0, min(max, level*100000*2))
	total := 0 // bytes emitted
	var combined uint32
	d := decoders.Get().(*decoder)
	defer decoders.Put(d)
	d.level = level
	defer func() { d.level = 0 }()
	for n := 1; ; n++ {
		switch at48(blob, bit) {
		case blockMagic:
			d.maxOut = max - total - len(out) + 1 // +1: never 0, which means no bound
			// The block is decoded straight into out's free capacity.
			b, err := d.decodeBlock(blob, bit, out[len(out):])
			d.maxOut = 0
			if err != nil {
				if err == errTruncated {
					return nil, total, fmt.Errorf("%w: truncated inside block %d (%w: the client writes what the complete blocks hold)", ErrCorrupt, n, ErrStricterThanLibbzip2)
				}
				return nil, total, fmt.Errorf("%w: block %d at %s: %w", ErrCorrupt, n, where(bit), err)
			}
			if b.pendingRun {
				return nil, total, fmt.Errorf("%w: block %d ends in four equal bytes without their count (libbzip2: BZ_DATA_ERROR)", ErrCorrupt, n)
			}
			if total+len(out)+len(b.out) > max {
				return nil, total, fmt.Errorf("%w: data decompresses to more than the %d bytes it may fill (%w)", ErrCorrupt, max, ErrTooLarge)
			}
			if len(b.out) > 0 && cap(out) > len(out) && &out[:len(out)+1][len(out)] == &b.out[0] {
				out = out[:len(out)+len(b.out)] // decoded in place
			} else {
				out = append(out, b.out...)
			}
			if emit != nil {
				if err := emit(out); err != nil {
					return nil, total, err
				}
				total += len(out)
				out = out[:0]
			}
			combined = (combined<<1 | combined>>31) ^ b.crc
			bit = b.endBit
		case endMagic:
			if (bit+80+7)/8 > uint64(len(blob)) {
				return nil, total, fmt.Errorf("%w: truncated in the end of stream marker (%w: the client writes the blocks' output)", ErrCorrupt, ErrStricterThanLibbzip2)
			}
			crc := uint32(at48(blob, bit+48) >> 16)
			if crc != combined {
				return nil, total, fmt.Errorf("%w: stream CRC mismatch (stored %08x, computed %08x)", ErrCorrupt, crc, combined)
			}
			end := (bit + 80 + 7) / 8
			if end != uint64(len(blob)) {
				return nil, total, fmt.Errorf("%w: %d bytes after the end of the bzip2 stream (the client accepts exactly one stream)", ErrCorrupt, uint64(len(blob))-end)
			}
			if out == nil {
				out = []byte{}
			}
			return out, total + len(out), nil
		default:
			if prefixOfMagic(blob, bit) {
				return nil, total, fmt.Errorf("%w: truncated after block %d (%w: the client writes the blocks' output)", ErrCorrupt, n-1, ErrStricterThanLibbzip2)
			}
			return nil, total, fmt.Errorf("%w: expected a block or the end of the stream at %s", ErrCorrupt, where(bit))
		}
	}
}

// checkHeader checks a stream's "BZh1".."BZh9". A blob that is a proper
// prefix of one is what libbzip2 calls "more input needed", not an error.
func checkHeader(blob []byte) error {
	const magic = "BZh"
	for i := 0; i < 4; i++ {
		if i >= len(blob) {
			return fmt.Errorf("%w: the data ends inside the bzip2 header (%w: the client writes nothing)", ErrCorrupt, ErrStricterThanLibbzip2)
		}
		if i < 3 && blob[i] != magic[i] || i == 3 && (blob[3] < '1' || blob[3] > '9') {
			return fmt.Errorf("%w: not a bzip2 stream (no BZh header)", ErrCorrupt)
		}
	}
	return nil
}

// prefixOfMagic reports whether the bits of blob from bit to its end are
// the start of a block or end-of-stream magic: the data stops where
// libbzip2 would wait for more.
func prefixOfMagic(blob []byte, bit uint64) bool {
	have := uint64(len(blob))*8 - min(bit, uint64(len(blob))*8)
	if have >= 48 {
		return false
	}
	v := at48(blob, bit) >> (48 - have)
	return v == blockMagic>>(48-have) || v == endMagic>>(48-have)
}
