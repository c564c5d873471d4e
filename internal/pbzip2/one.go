package pbzip2

import (
	"fmt"
	"sync"
)

// decoders are reused across calls: each holds a 3.6 MB BWT array.
var decoders = sync.Pool{New: func() any { return &decoder{} }}

// DecodeOne decodes blob, which must be exactly one bzip2 stream and
// nothing else (update_engine aborts when input remains after the end of
// the stream), producing at most max bytes. It runs on the calling
// goroutine: a payload's blobs are small, and callers decode many at once.
func DecodeOne(blob []byte, max int) ([]byte, error) {
	if len(blob) < 4 || string(blob[:3]) != "BZh" || blob[3] < '1' || blob[3] > '9' {
		return nil, fmt.Errorf("%w: not a bzip2 stream (no BZh header)", ErrCorrupt)
	}
	level := int(blob[3] - '0')
	bit := uint64(32)
	out := make([]byte, 0, min(max, level*100000*2))
	var combined uint32
	d := decoders.Get().(*decoder)
	defer decoders.Put(d)
	var blk []byte
	for n := 1; ; n++ {
		switch at48(blob, bit) {
		case blockMagic:
			d.maxOut = max - len(out) + 1 // +1: never 0, which means no bound
			b, err := d.decodeBlock(blob, bit, blk)
			d.maxOut = 0
			if err != nil {
				if err == errTruncated {
					return nil, fmt.Errorf("%w: truncated inside block %d", ErrCorrupt, n)
				}
				return nil, fmt.Errorf("%w: block %d at %s: %v", ErrCorrupt, n, where(bit), err)
			}
			if b.n > level*100000 {
				return nil, fmt.Errorf("%w: block %d holds more than level %d allows", ErrCorrupt, n, level)
			}
			if len(out)+len(b.out) > max {
				return nil, fmt.Errorf("%w: data decompresses to more than the %d bytes it may fill", ErrCorrupt, max)
			}
			out = append(out, b.out...)
			blk = b.out[:0]
			combined = (combined<<1 | combined>>31) ^ b.crc
			bit = b.endBit
		case endMagic:
			if (bit+80+7)/8 > uint64(len(blob)) {
				return nil, fmt.Errorf("%w: truncated in the end of stream marker", ErrCorrupt)
			}
			crc := uint32(at48(blob, bit+48) >> 16)
			if crc != combined {
				return nil, fmt.Errorf("%w: stream CRC mismatch (stored %08x, computed %08x)", ErrCorrupt, crc, combined)
			}
			end := (bit + 80 + 7) / 8
			if end != uint64(len(blob)) {
				return nil, fmt.Errorf("%w: %d bytes after the end of the bzip2 stream (the client accepts exactly one stream)", ErrCorrupt, uint64(len(blob))-end)
			}
			if out == nil {
				out = []byte{}
			}
			return out, nil
		default:
			if bit/8 >= uint64(len(blob)) {
				return nil, fmt.Errorf("%w: truncated after block %d", ErrCorrupt, n-1)
			}
			return nil, fmt.Errorf("%w: expected a block or the end of the stream at %s", ErrCorrupt, where(bit))
		}
	}
}
