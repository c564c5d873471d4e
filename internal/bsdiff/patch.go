// Package bsdiff applies BSDIFF40 patches, the format update_engine's BSDIFF
// operation carries and that Debian's and ChromiumOS's bspatch apply.
//
// A patch is a 32-byte header ("BSDIFF40", the compressed lengths of the
// control and diff blocks, and the new size, each an 8-byte sign-magnitude
// little-endian integer) followed by three bzip2 streams: control triples
// (add length, copy length, seek), diff bytes added to the old data, and
// extra bytes copied verbatim.
//
// Patch is a model of the ChromiumOS bspatch the client runs
// (AOSP external/bsdiff at b7e3b8e0, the extents-file version): each
// stream is read lazily with libbzip2's BZ2_bzRead from where it starts to
// the end of the patch (pbzip2.BZRead), the old data is read through its
// extents only where a diff byte needs it, and every check bspatch makes is
// made at the same point.
package bsdiff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/augen-project/augen"
	"math"

	"github.com/augen-project/augen/internal/pbzip2"
)

// Magic starts every BSDIFF40 patch.
const Magic = "BSDIFF40"

// ErrCorrupt wraps every error about a malformed patch.
var ErrCorrupt = augen.Rejection("bsdiff: corrupt patch")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// stricter marks a refusal of a patch bspatch would apply.
func stricter(rule, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %w", ErrCorrupt, fmt.Sprintf(format, args...), augen.Stricter(rule))
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

// Old is the old data as bspatch sees it: its source extents, read
// through. Size is their total length; ReadAt reads len(p) bytes at off
// (0 <= off, off+len(p) <= Size) and fails where the client's read fails
// (past the end of a file).
type Old interface {
	Size() int64
	ReadAt(p []byte, off int64) error
}

type memOld []byte

func (m memOld) Size() int64 { return int64(len(m)) }
func (m memOld) ReadAt(p []byte, off int64) error {
	copy(p, m[off:])
	return nil
}

// Patch applies patch to old and returns the new data, refusing patches
// whose output would exceed max bytes.
func Patch(old, patch []byte, max int64) ([]byte, error) {
	out, _, err := apply(memOld(old), patch, max)
	return out, err
}

// PatchOld is Patch with the old data read through old, as the client's
// bspatch reads it.
func PatchOld(old Old, patch []byte, max int64) ([]byte, error) {
	out, _, err := apply(old, patch, max)
	return out, err
}

// apply is Patch that also returns how many control triples it read.
//
// bspatch's own rules: the header's lengths and new size are not
// negative, every add and copy length is not negative and stays within
// the new size, and at the start of every triple the old position may be
// anywhere up to the old data's end (before its start is fine: those
// bytes add nothing). A patch whose new size exceeds max (the operation's
// dst_length) fails when bspatch writes it.
//
// augen's own bound: the work is bounded by the output. A triple that adds
// and copies nothing only moves the old position, and a patch may hold at
// most one triple per output byte (plus one), so a small patch of idle
// triples cannot keep the applier busy for long; bspatch takes any number
// (rule bsdiff-idle-triples).
func apply(old Old, patch []byte, limit int64) ([]byte, int64, error) {
	if len(patch) < 32 {
		return nil, 0, corrupt("%d bytes: shorter than the BSDIFF40 header", len(patch))
	}
	if string(patch[:8]) != Magic {
		return nil, 0, corrupt("no BSDIFF40 header")
	}
	ctrlLen, diffLen, newSize := offtin(patch[8:16]), offtin(patch[16:24]), offtin(patch[24:32])
	if ctrlLen < 0 || diffLen < 0 || newSize < 0 {
		return nil, 0, corrupt("negative length in the header (%d, %d, %d)", ctrlLen, diffLen, newSize)
	}
	if ctrlLen > math.MaxInt64-32 || diffLen > math.MaxInt64-32-ctrlLen {
		return nil, 0, corrupt("stream offsets overflow (bspatch cannot seek there)")
	}
	if newSize > limit {
		return nil, 0, corrupt("new size %d exceeds the %d bytes its destination holds", newSize, limit)
	}
	at := func(off int64) []byte {
		if off >= int64(len(patch)) {
			return nil
		}
		return patch[off:]
	}
	ctrlMax := int64(24) * (newSize + 1)
	ctrl := pbzip2.NewBZRead(at(32), int(min(ctrlMax, math.MaxInt32)))
	diff := pbzip2.NewBZRead(at(32+ctrlLen), int(newSize))
	extra := pbzip2.NewBZRead(at(32+ctrlLen+diffLen), int(newSize))

	out := make([]byte, newSize)
	oldSize := old.Size()
	var oldPos, newPos, triples int64
	var triple [24]byte
	var oldBuf []byte
	for newPos < newSize {
		if oldPos > oldSize {
			return nil, triples, corrupt("old position %d is past the old data's end (%d): bspatch cannot seek there", oldPos, oldSize)
		}
		if triples > newPos+1 {
			return nil, triples, stricter("bsdiff-idle-triples", "%d control triples for %d output bytes", triples, newPos)
		}
		triples++
		for i := 0; i < 3; i++ {
			if err := ctrl.ReadFull(triple[8*i : 8*i+8]); err != nil {
				return nil, triples, streamErr("control", err)
			}
		}
		add, copyLen, seek := offtin(triple[0:8]), offtin(triple[8:16]), offtin(triple[16:24])
		if add < 0 || copyLen < 0 {
			return nil, triples, corrupt("control triple (%d,%d,%d): negative length", add, copyLen, seek)
		}
		if add > newSize-newPos {
			return nil, triples, corrupt("control triple (%d,%d,%d) at output byte %d adds past the new size %d", add, copyLen, seek, newPos, newSize)
		}
		seg := out[newPos : newPos+add]
		if err := diff.ReadFull(seg); err != nil {
			return nil, triples, streamErr("diff", err)
		}
		// Only the old bytes a diff byte lands on are read.
		lo, hi := max(oldPos, 0), min(oldPos+add, oldSize)
		if lo < hi {
			if int64(cap(oldBuf)) < hi-lo {
				oldBuf = make([]byte, hi-lo)
			}
			b := oldBuf[:hi-lo]
			if err := old.ReadAt(b, lo); err != nil {
				return nil, triples, err
			}
			d := seg[lo-oldPos:]
			for i := range b {
				d[i] += b[i]
			}
		}
		newPos += add
		oldPos += add
		if copyLen > newSize-newPos {
			return nil, triples, corrupt("control triple (%d,%d,%d) at output byte %d copies past the new size %d", add, copyLen, seek, newPos, newSize)
		}
		if err := extra.ReadFull(out[newPos : newPos+copyLen]); err != nil {
			return nil, triples, streamErr("extra", err)
		}
		newPos += copyLen
		if (seek > 0 && oldPos > math.MaxInt64-seek) || (seek < 0 && oldPos < math.MinInt64-seek) {
			return nil, triples, stricter("bsdiff-overflow", "old position %d + seek %d overflows", oldPos, seek)
		}
		oldPos += seek
	}
	for _, s := range []struct {
		name string
		r    *pbzip2.BZRead
	}{{"control", ctrl}, {"diff", diff}, {"extra", extra}} {
		if err := s.r.Close(); err != nil {
			return nil, triples, streamErr(s.name, err)
		}
	}
	return out, triples, nil
}

// streamErr names the stream; a refusal libbzip2 would not make is marked
// as stricter than the client.
func streamErr(name string, err error) error {
	if errors.Is(err, pbzip2.ErrStricterThanLibbzip2) {
		return fmt.Errorf("%w: %s block: %w: %w", ErrCorrupt, name, err, augen.Stricter("bzip2-"+name))
	}
	return fmt.Errorf("%w: %s block: %w", ErrCorrupt, name, err)
}
