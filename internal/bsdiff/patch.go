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
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/augen-project/augen"
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
	var out bytes.Buffer
	_, err := apply(memOld(old), patch, max, &out)
	return out.Bytes(), err
}

// PatchTo applies patch to old, as the client's bspatch reads it, and
// writes the new data to w as it is made: memory is a chunk of it, not its
// size. After an error, what was written is not the patch's output.
func PatchTo(old Old, patch []byte, max int64, w io.Writer) error {
	_, err := apply(old, patch, max, w)
	return err
}

// chunk bounds the diff bytes and old bytes held at once.
const chunk = 1 << 20

// apply is PatchTo that returns how many control triples it read.
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
//
// Each of a triple's reads of the diff and extra streams is one read to
// the stream model (pbzip2.BZRead), delivered in parts: the diff bytes are
// added to the old bytes they land on a chunk at a time.
func apply(old Old, patch []byte, limit int64, w io.Writer) (int64, error) {
	if len(patch) < 32 {
		return 0, corrupt("%d bytes: shorter than the BSDIFF40 header", len(patch))
	}
	if string(patch[:8]) != Magic {
		return 0, corrupt("no BSDIFF40 header")
	}
	ctrlLen, diffLen, newSize := offtin(patch[8:16]), offtin(patch[16:24]), offtin(patch[24:32])
	if ctrlLen < 0 || diffLen < 0 || newSize < 0 {
		return 0, corrupt("negative length in the header (%d, %d, %d)", ctrlLen, diffLen, newSize)
	}
	if ctrlLen > math.MaxInt64-32 || diffLen > math.MaxInt64-32-ctrlLen {
		return 0, corrupt("stream offsets overflow (bspatch cannot seek there)")
	}
	if newSize > limit {
		return 0, corrupt("new size %d exceeds the %d bytes its destination holds", newSize, limit)
	}
	at := func(off int64) []byte {
		if off >= int64(len(patch)) {
			return nil
		}
		return patch[off:]
	}
	ctrlMax := int64(24) * (newSize + 1)
	ctrl := pbzip2.NewBZRead(at(32), int(min(ctrlMax, math.MaxInt32)))
	diff := pbzip2.NewBZRead(at(32+ctrlLen), int(min(newSize, math.MaxInt32)))
	extra := pbzip2.NewBZRead(at(32+ctrlLen+diffLen), int(min(newSize, math.MaxInt32)))

	oldSize := old.Size()
	var oldPos, newPos, triples int64
	var triple [24]byte
	var work, oldBuf []byte
	// addOld adds to seg (the diff bytes for new positions starting at
	// oldPos+off) the old bytes they land on, then writes seg.
	addOld := func(seg []byte, from int64) error {
		lo, hi := max(from, 0), min(from+int64(len(seg)), oldSize)
		if lo < hi {
			if int64(cap(oldBuf)) < hi-lo {
				oldBuf = make([]byte, hi-lo)
			}
			b := oldBuf[:hi-lo]
			if err := old.ReadAt(b, lo); err != nil {
				return err
			}
			d := seg[lo-from:]
			for i := range b {
				d[i] += b[i]
			}
		}
		_, err := w.Write(seg)
		return err
	}
	for newPos < newSize {
		if oldPos > oldSize {
			return triples, corrupt("old position %d is past the old data's end (%d): bspatch cannot seek there", oldPos, oldSize)
		}
		if triples > newPos+1 {
			return triples, stricter("bsdiff-idle-triples", "%d control triples for %d output bytes", triples, newPos)
		}
		triples++
		for i := 0; i < 3; i++ {
			if err := ctrl.ReadFull(triple[8*i : 8*i+8]); err != nil {
				return triples, streamErr("control", err)
			}
		}
		add, copyLen, seek := offtin(triple[0:8]), offtin(triple[8:16]), offtin(triple[16:24])
		if add < 0 || copyLen < 0 {
			return triples, corrupt("control triple (%d,%d,%d): negative length", add, copyLen, seek)
		}
		if add > newSize-newPos {
			return triples, corrupt("control triple (%d,%d,%d) at output byte %d adds past the new size %d", add, copyLen, seek, newPos, newSize)
		}
		// Only the old bytes a diff byte lands on are read.
		var done int64
		var oldErr error
		err := diff.ReadFunc(int(add), func(part []byte) error {
			for len(part) > 0 {
				k := min(len(part), chunk)
				if cap(work) < k {
					work = make([]byte, chunk)
				}
				seg := work[:k]
				copy(seg, part)
				if err := addOld(seg, oldPos+done); err != nil {
					oldErr = err
					return err
				}
				done += int64(k)
				part = part[k:]
			}
			return nil
		})
		if oldErr != nil {
			return triples, oldErr
		}
		if err != nil {
			return triples, streamErr("diff", err)
		}
		newPos += add
		oldPos += add
		if copyLen > newSize-newPos {
			return triples, corrupt("control triple (%d,%d,%d) at output byte %d copies past the new size %d", add, copyLen, seek, newPos, newSize)
		}
		var writeErr error
		err = extra.ReadFunc(int(copyLen), func(part []byte) error {
			_, writeErr = w.Write(part)
			return writeErr
		})
		if writeErr != nil {
			return triples, writeErr
		}
		if err != nil {
			return triples, streamErr("extra", err)
		}
		newPos += copyLen
		if (seek > 0 && oldPos > math.MaxInt64-seek) || (seek < 0 && oldPos < math.MinInt64-seek) {
			return triples, stricter("bsdiff-overflow", "old position %d + seek %d overflows", oldPos, seek)
		}
		oldPos += seek
	}
	for _, s := range []struct {
		name string
		r    *pbzip2.BZRead
	}{{"control", ctrl}, {"diff", diff}, {"extra", extra}} {
		if err := s.r.Close(); err != nil {
			return triples, streamErr(s.name, err)
		}
	}
	return triples, nil
}

// streamErr names the stream; a refusal libbzip2 would not make is marked
// as stricter than the client.
func streamErr(name string, err error) error {
	if errors.Is(err, pbzip2.ErrStricterThanLibbzip2) {
		return fmt.Errorf("%w: %s block: %w: %w", ErrCorrupt, name, err, augen.Stricter("bzip2-"+name))
	}
	return fmt.Errorf("%w: %s block: %w", ErrCorrupt, name, err)
}
