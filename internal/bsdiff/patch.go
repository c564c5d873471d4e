// Package bsdiff applies BSDIFF40 patches, the format update_engine's BSDIFF
// operation carries and that Debian's and ChromiumOS's bspatch apply.
//
// A patch is a 32-byte header ("BSDIFF40", the compressed lengths of the
// control and diff blocks, and the new size, each an 8-byte sign-magnitude
// little-endian integer) followed by three bzip2 streams: control triples
// (add length, copy length, seek), diff bytes added to the old data, and
// extra bytes copied verbatim.
package bsdiff

import (
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"fmt"
	"github.com/augen-project/augen"
	"io"
)

// Magic starts every BSDIFF40 patch.
const Magic = "BSDIFF40"

// ErrCorrupt wraps every error about a malformed patch.
var ErrCorrupt = augen.Rejection("bsdiff: corrupt patch")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// offtin decodes bsdiff's sign-magnitude little-endian integer.
func offtin(b []byte) int64 {
	v := int64(binary.LittleEndian.Uint64(b) &^ (1 << 63))
	if b[7]&0x80 != 0 {
		return -v
	}
	return v
}

// NewSize returns the size of the output a patch produces.
func NewSize(patch []byte) (int64, error) {
	if len(patch) < 32 || string(patch[:8]) != Magic {
		return 0, corrupt("no BSDIFF40 header")
	}
	n := offtin(patch[24:32])
	if n < 0 {
		return 0, corrupt("negative new size")
	}
	return n, nil
}

// Patch applies patch to old and returns the new data, refusing patches
// whose output would exceed max bytes.
func Patch(old, patch []byte, max int64) ([]byte, error) {
	out, _, err := apply(old, patch, max)
	return out, err
}

// apply is Patch that also returns how many control triples it read.
//
// The work is bounded by the output: a triple that adds and copies
// nothing only moves the old position, and a patch may hold at most one
// triple per output byte (plus one), so a small patch of idle triples
// cannot keep the applier busy for long.
func apply(old, patch []byte, max int64) ([]byte, int64, error) {
	newSize, err := NewSize(patch)
	if err != nil {
		return nil, 0, err
	}
	if newSize > max {
		return nil, 0, corrupt("new size %d exceeds the %d bytes allowed", newSize, max)
	}
	ctrlLen, diffLen := offtin(patch[8:16]), offtin(patch[16:24])
	if ctrlLen < 0 || diffLen < 0 || ctrlLen > int64(len(patch))-32 || diffLen > int64(len(patch))-32-ctrlLen {
		return nil, 0, corrupt("block lengths %d and %d do not fit the %d-byte patch", ctrlLen, diffLen, len(patch))
	}
	body := patch[32:]
	ctrl := bzip2.NewReader(bytes.NewReader(body[:ctrlLen]))
	diff := bzip2.NewReader(bytes.NewReader(body[ctrlLen : ctrlLen+diffLen]))
	extra := bzip2.NewReader(bytes.NewReader(body[ctrlLen+diffLen:]))

	out := make([]byte, newSize)
	var oldPos, newPos, triples int64
	var triple [24]byte
	for newPos < newSize {
		if triples > newPos+1 {
			return nil, triples, corrupt("%d control triples for %d output bytes: more triples than bytes produced", triples, newPos)
		}
		triples++
		if _, err := io.ReadFull(ctrl, triple[:]); err != nil {
			return nil, triples, corrupt("control block: %v", err)
		}
		add, copyLen, seek := offtin(triple[0:8]), offtin(triple[8:16]), offtin(triple[16:24])
		if add < 0 || copyLen < 0 || add > newSize-newPos {
			return nil, triples, corrupt("control triple (%d,%d,%d) at output byte %d is out of range", add, copyLen, seek, newPos)
		}
		seg := out[newPos : newPos+add]
		if _, err := io.ReadFull(diff, seg); err != nil {
			return nil, triples, corrupt("diff block: %v", err)
		}
		for i := range seg {
			if p := oldPos + int64(i); p >= 0 && p < int64(len(old)) {
				seg[i] += old[p]
			}
		}
		newPos += add
		oldPos += add
		if copyLen > newSize-newPos {
			return nil, triples, corrupt("extra length %d at output byte %d runs past the new size %d", copyLen, newPos, newSize)
		}
		if _, err := io.ReadFull(extra, out[newPos:newPos+copyLen]); err != nil {
			return nil, triples, corrupt("extra block: %v", err)
		}
		newPos += copyLen
		oldPos += seek
	}
	return out, triples, nil
}
