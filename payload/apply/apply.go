// Package apply executes a payload's operations on a target in place, with
// update_engine's semantics, so that a payload can be proven to rebuild what
// it claims before any machine downloads it.
//
// The client first copies the running partition into the target (so a
// delta's untouched blocks are already right) and then runs the operations
// in manifest order: partition operations, then each procedure's. Data is
// consumed for every operation; procedure data is applied to the kernel or
// PCR policy file.
package apply

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/augen-project/augen/internal/bsdiff"
	"github.com/augen-project/augen/internal/pbzip2"
	"github.com/augen-project/augen/payload"
)

// ErrApply wraps every error caused by what a payload asks for (as opposed
// to I/O errors on the targets).
var ErrApply = errors.New("apply: payload cannot be applied")

func failf(op *payload.Op, format string, args ...any) error {
	return fmt.Errorf("%w: %s (%s): %s", ErrApply, op.Where(), op.GetType(), fmt.Sprintf(format, args...))
}

// Target is a partition or file the operations read and write.
type Target interface {
	io.ReaderAt
	io.WriterAt
}

// Targets are where the operations go. Partition must be sized (or
// readable) up to Limit bytes; a nil procedure target means that
// procedure's operations are checked and their data consumed but nothing is
// written.
type Targets struct {
	Partition Target
	// Limit is the partition's size in bytes: no operation may read or
	// write past it (rounded up to a whole block).
	Limit uint64
	// Procedures maps a procedure type to its file target.
	Procedures map[payload.ProcedureType]Target
}

// MaxMoveBytes bounds what one MOVE may read into memory (the client reads
// a MOVE's whole source before writing it).
const MaxMoveBytes = 1 << 30

// MaxFileSize bounds a procedure's file (a kernel is tens of MiB).
const MaxFileSize = 4 << 30

// at returns the target offset of byte skip of a (non-hole) extent, after
// checking that count bytes from there stay within limit. Extents may be
// larger than the data they receive (delta_generator gives a short last
// chunk 256 blocks): only the bytes accessed must fit. Block numbers are
// compared before multiplying, so one near 2^60 cannot wrap around.
func at(e *payload.Extent, skip, count, limit uint64, op *payload.Op, verb string) (uint64, error) {
	s := e.GetStartBlock()
	if s > limit/payload.BlockSize {
		return 0, failf(op, "%s block %d, past the end of the target (%d bytes)", verb, s, limit)
	}
	off := s*payload.BlockSize + skip
	if off+count > limit {
		return 0, failf(op, "%s bytes %d..%d, past the end of the target (%d bytes)", verb, off, off+count, limit)
	}
	return off, nil
}

// Apply runs every remaining operation of pr on t. It returns once Next
// has returned io.EOF, so the whole file has been checked.
//
// Operations are applied strictly in order, as the client applies them;
// only the decompression of REPLACE_BZ data runs ahead, on all cores, a
// bounded number of operations in advance.
func Apply(pr *payload.Reader, t *Targets) error {
	m := pr.Manifest()
	workers := runtime.GOMAXPROCS(0)
	items := make(chan *pending, 2*workers)
	work := make(chan *pending)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				p.decoded, p.err = pbzip2.DecodeOne(p.op.Data, int(extentBytes(p.op.DstExtents)))
				close(p.done)
			}
		}()
	}
	// The reader runs on its own goroutine; Next's data is copied, since
	// it is only valid until the next call.
	go func() {
		defer close(items)
		defer close(work)
		for {
			op, err := pr.Next()
			p := &pending{op: op, err: err, done: make(chan struct{})}
			if err != nil {
				close(p.done)
				select {
				case items <- p:
				case <-stop:
				}
				return
			}
			op.Data = append([]byte(nil), op.Data...)
			if op.GetType() == payload.OpReplaceBz {
				select {
				case work <- p:
				case <-stop:
					return
				}
			} else {
				close(p.done)
			}
			select {
			case items <- p:
			case <-stop:
				return
			}
		}
	}()
	err := applyInOrder(m, t, items)
	close(stop)
	for range items { // let the reader goroutine finish
	}
	wg.Wait()
	return err
}

type pending struct {
	op      *payload.Op
	err     error
	decoded []byte
	done    chan struct{}
}

func applyInOrder(m *payload.Manifest, t *Targets, items <-chan *pending) error {
	for p := range items {
		<-p.done
		if p.err == io.EOF {
			return nil
		}
		if p.err != nil && p.op == nil {
			return p.err
		}
		op := p.op
		var dst Target
		limit := payload.Blocks(t.Limit) * payload.BlockSize
		if op.Procedure < 0 {
			dst = t.Partition
		} else {
			proc := m.Procedures[op.Procedure]
			if proc.Type == nil {
				continue // the client skips untyped procedures; data was consumed
			}
			dst = t.Procedures[proc.GetType()]
			limit = MaxFileSize
		}
		if dst == nil {
			continue
		}
		if op.GetType() == payload.OpReplaceBz {
			if p.err != nil {
				return failf(op, "%v", p.err)
			}
			w := &extentWriter{t: dst, extents: op.DstExtents, limit: limit, op: op}
			if err := w.writeAll(p.decoded, true); err != nil {
				return err
			}
			continue
		}
		if err := applyOp(dst, limit, op); err != nil {
			return err
		}
	}
	return errors.New("apply: the payload reader stopped without an end")
}

func applyOp(dst Target, limit uint64, op *payload.Op) error {
	w := &extentWriter{t: dst, extents: op.DstExtents, limit: limit, op: op}
	switch op.GetType() {
	case payload.OpReplace:
		return w.writeAll(op.Data, true)
	case payload.OpReplaceBz:
		data, err := pbzip2.DecodeOne(op.Data, int(extentBytes(op.DstExtents)))
		if err != nil {
			return failf(op, "%v", err)
		}
		return w.writeAll(data, true)
	case payload.OpMove:
		n := extentBytes(op.SrcExtents)
		if n > MaxMoveBytes {
			return failf(op, "reads %d bytes, more than the %d a MOVE may hold in memory", n, MaxMoveBytes)
		}
		src, err := readExtents(dst, op.SrcExtents, n, limit, op)
		if err != nil {
			return err
		}
		return w.writeAll(src, false)
	case payload.OpBsdiff:
		srcLen := extentBytes(op.SrcExtents)
		if op.SrcLength != nil {
			srcLen = op.GetSrcLength()
		}
		dstLen := extentBytes(op.DstExtents)
		if op.DstLength != nil {
			dstLen = op.GetDstLength()
		}
		if srcLen > MaxMoveBytes || dstLen > MaxMoveBytes {
			return failf(op, "source %d or destination %d bytes exceed %d", srcLen, dstLen, MaxMoveBytes)
		}
		src, err := readExtents(dst, op.SrcExtents, srcLen, limit, op)
		if err != nil {
			return err
		}
		out, err := bsdiff.Patch(src, op.Data, int64(dstLen))
		if err != nil {
			return failf(op, "%v", err)
		}
		if uint64(len(out)) != dstLen {
			return failf(op, "patch produces %d bytes, dst_length is %d", len(out), dstLen)
		}
		if err := w.writeAll(out, false); err != nil {
			return err
		}
		// The client zeroes the rest of the last destination block.
		return w.zeroTail()
	}
	return failf(op, "unknown operation type")
}

func extentBytes(list []*payload.Extent) uint64 {
	var n uint64
	for _, e := range list {
		n += e.GetNumBlocks() * payload.BlockSize
	}
	return n
}

// readExtents reads the first n bytes of the concatenated extents. Bytes
// past the end of a file target read as zeros, as they would from the
// block device behind it.
func readExtents(t Target, list []*payload.Extent, n, limit uint64, op *payload.Op) ([]byte, error) {
	buf := make([]byte, n)
	off := uint64(0)
	for _, e := range list {
		if off >= n {
			break
		}
		size := min(e.GetNumBlocks()*payload.BlockSize, n-off)
		start, err := at(e, 0, size, limit, op, "reads")
		if err != nil {
			return nil, err
		}
		got, err := t.ReadAt(buf[off:off+size], int64(start))
		if err != nil && err != io.EOF {
			return nil, err
		}
		clear(buf[off+uint64(got) : off+size])
		off += size
	}
	return buf, nil
}

// extentWriter writes data across destination extents in order, skipping
// sparse holes, as update_engine's DirectExtentWriter does.
type extentWriter struct {
	t       Target
	extents []*payload.Extent
	limit   uint64
	op      *payload.Op
	idx     int    // current extent
	pos     uint64 // bytes written into the current extent
	end     uint64 // absolute target offset after the last byte written (0 for a hole)
}

func (w *extentWriter) writeAll(data []byte, pad bool) error {
	total := len(data)
	for len(data) > 0 {
		if w.idx >= len(w.extents) {
			return failf(w.op, "its %d bytes of data exceed its destination extents (%d bytes)", total, extentBytes(w.extents))
		}
		e := w.extents[w.idx]
		room := e.GetNumBlocks()*payload.BlockSize - w.pos
		n := min(uint64(len(data)), room)
		if e.GetStartBlock() != payload.SparseHole {
			off, err := at(e, w.pos, n, w.limit, w.op, "writes")
			if err != nil {
				return err
			}
			if _, err := w.t.WriteAt(data[:n], int64(off)); err != nil {
				return err
			}
			w.end = off + n
		} else {
			w.end = 0
		}
		data = data[n:]
		w.pos += n
		if w.pos == e.GetNumBlocks()*payload.BlockSize {
			w.idx++
			w.pos = 0
		}
	}
	if pad {
		return w.zeroTail()
	}
	return nil
}

// zeroTail fills the rest of the block the last byte was written into.
func (w *extentWriter) zeroTail() error {
	if w.end == 0 || w.end%payload.BlockSize == 0 {
		return nil
	}
	n := payload.BlockSize - w.end%payload.BlockSize
	if w.end+n > w.limit {
		return failf(w.op, "pads past the end of the partition")
	}
	_, err := w.t.WriteAt(make([]byte, n), int64(w.end))
	return err
}
