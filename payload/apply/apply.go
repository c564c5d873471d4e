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
	"context"
	"errors"
	"fmt"
	"github.com/augen-project/augen"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/augen-project/augen/internal/bsdiff"
	"github.com/augen-project/augen/internal/pbzip2"
	"github.com/augen-project/augen/payload"
)

// ErrApply wraps every error caused by what a payload asks for (as opposed
// to I/O errors on the targets).
var ErrApply = augen.Rejection("apply: payload cannot be applied")

// failure is an error already naming its operation.
type failure struct{ error }

func (f failure) Unwrap() error { return f.error }

func failf(op *payload.Op, format string, args ...any) error {
	return failure{fmt.Errorf("%w: %s (%s): %s", ErrApply, op.Where(), op.GetType(), fmt.Sprintf(format, args...))}
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
	// Counters, if set, is told how much work the payload caused, so that
	// tests can prove a crafted payload was stopped early.
	Counters *Counters
}

// Counters count work done while applying.
type Counters struct {
	// Decompressed counts bytes produced by REPLACE_BZ decoding.
	Decompressed atomic.Int64
	// Operations counts operations applied.
	Operations atomic.Int64
}

// Limits on what one payload may make the applier do. Each is checked
// before the memory or work it bounds is spent, with arithmetic that
// cannot overflow.
const (
	// MaxOpBytes bounds what one operation may read or produce in memory:
	// full payloads use 1 MiB operations, a delta's whole-kernel or
	// whole-file operation tens of MiB.
	MaxOpBytes = 256 << 20
	// MaxFileSize bounds a procedure's file (a kernel is tens of MiB).
	MaxFileSize = 256 << 20
	// MaxPartitionSize bounds the partition a payload may describe: twice
	// the 2 GiB USR partition Flatcar has had since 2025-09 (payloads
	// carry its first 1 GiB). A simulated apply hashes the whole
	// partition, so this also bounds the work a payload can ask for.
	MaxPartitionSize = 4 << 30
	// aheadBytes is the largest output decoded ahead of its turn on
	// another core; larger operations are decoded when they are applied,
	// so at most 2×GOMAXPROCS small outputs are held at once.
	aheadBytes = 4 << 20
)

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
// has returned io.EOF, so the whole file has been checked, or with ctx's
// error once ctx is done (checked before every operation).
//
// Operations are applied strictly in order, as the client applies them;
// only the decompression of small REPLACE_BZ operations runs ahead, on all
// cores, a bounded number of operations in advance. Every destination is
// checked against its target before its data is decompressed, and the
// decoder is never allowed to produce more than the destination holds.
func Apply(ctx context.Context, pr *payload.Reader, t *Targets) error {
	m := pr.Manifest()
	if t.Limit > MaxPartitionSize {
		return fmt.Errorf("%w: the partition is %d bytes, over augen's limit of %d", ErrApply, t.Limit, uint64(MaxPartitionSize))
	}
	counters := t.Counters
	if counters == nil {
		counters = &Counters{}
	}
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
				p.decoded, p.err = pbzip2.DecodeOne(p.op.Data, int(p.room))
				counters.Decompressed.Add(int64(len(p.decoded)))
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
				p.room, p.err = room(op, limitFor(t, op))
			}
			if op.GetType() == payload.OpReplaceBz && p.err == nil && p.room <= aheadBytes {
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
	err := applyInOrder(ctx, m, t, items, counters)
	close(stop)
	for range items { // let the reader goroutine finish
	}
	wg.Wait()
	return err
}

type pending struct {
	op      *payload.Op
	err     error
	room    uint64 // bytes the destination can take (REPLACE_BZ)
	decoded []byte
	done    chan struct{}
}

// limitFor is the byte size an operation's target may be accessed up to.
func limitFor(t *Targets, op *payload.Op) uint64 {
	if op.Procedure < 0 {
		return payload.Blocks(t.Limit) * payload.BlockSize
	}
	return MaxFileSize
}

// room returns how many bytes op's destination extents can receive within
// limit (sparse holes swallow data, so they count), after checking that
// every extent that would receive data starts inside the target. The sum
// saturates instead of overflowing and is capped at MaxOpBytes: it bounds
// how much the decoder may produce before anything is decoded.
func room(op *payload.Op, limit uint64) (uint64, error) {
	var n uint64
	for _, e := range op.DstExtents {
		size := satMul(e.GetNumBlocks(), payload.BlockSize)
		if e.GetStartBlock() != payload.SparseHole {
			s := e.GetStartBlock()
			if s >= limit/payload.BlockSize {
				return 0, failf(op, "writes block %d, past the end of the target (%d bytes)", s, limit)
			}
			size = min(size, limit-s*payload.BlockSize)
		}
		n = satAdd(n, size)
		if n >= MaxOpBytes {
			return MaxOpBytes, nil
		}
	}
	return n, nil
}

func satMul(a, b uint64) uint64 {
	if b != 0 && a > math.MaxUint64/b {
		return math.MaxUint64
	}
	return a * b
}

func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

func applyInOrder(ctx context.Context, m *payload.Manifest, t *Targets, items <-chan *pending, c *Counters) error {
	for p := range items {
		if err := ctx.Err(); err != nil {
			return err
		}
		<-p.done
		if p.err == io.EOF {
			return nil
		}
		if p.err != nil && p.op == nil {
			return p.err
		}
		op := p.op
		var dst Target
		limit := limitFor(t, op)
		if op.Procedure < 0 {
			dst = t.Partition
		} else {
			proc := m.Procedures[op.Procedure]
			if proc.Type == nil {
				continue // the client skips untyped procedures; data was consumed
			}
			dst = t.Procedures[proc.GetType()]
		}
		if dst == nil {
			continue
		}
		c.Operations.Add(1)
		if op.GetType() == payload.OpReplaceBz {
			if p.err != nil {
				var fe failure
				if errors.As(p.err, &fe) {
					return p.err
				}
				return failf(op, "%v", p.err)
			}
			data := p.decoded
			if data == nil {
				var err error
				if data, err = pbzip2.DecodeOne(op.Data, int(p.room)); err != nil {
					return failf(op, "%v", err)
				}
				c.Decompressed.Add(int64(len(data)))
			}
			w := &extentWriter{t: dst, extents: op.DstExtents, limit: limit, op: op}
			if err := w.writeAll(data, true); err != nil {
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
	case payload.OpMove:
		n := extentBytes(op.SrcExtents)
		if n > MaxOpBytes {
			return failf(op, "reads %d bytes, more than the %d a MOVE may hold in memory", n, MaxOpBytes)
		}
		if err := fits(op, n, limit); err != nil {
			return err
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
		if srcLen > MaxOpBytes || dstLen > MaxOpBytes {
			return failf(op, "source %d or destination %d bytes exceed %d", srcLen, dstLen, MaxOpBytes)
		}
		if err := fits(op, dstLen, limit); err != nil {
			return err
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

// extentBytes is the byte size of the extents, saturating at MaxUint64.
func extentBytes(list []*payload.Extent) uint64 {
	var n uint64
	for _, e := range list {
		n = satAdd(n, satMul(e.GetNumBlocks(), payload.BlockSize))
	}
	return n
}

// fits checks, before anything is read or patched, that op's destination
// can take n bytes inside the target.
func fits(op *payload.Op, n, limit uint64) error {
	r, err := room(op, limit)
	if err != nil {
		return err
	}
	if r < n {
		return failf(op, "writes %d bytes, but its destination holds %d inside the target (%d bytes)", n, r, limit)
	}
	return nil
}

// readExtents reads the first n bytes of the concatenated extents, after
// checking that all of them lie inside the target (so nothing is allocated
// for a read that cannot happen). Bytes past the end of a file target read
// as zeros, as they would from the block device behind it.
func readExtents(t Target, list []*payload.Extent, n, limit uint64, op *payload.Op) ([]byte, error) {
	off := uint64(0)
	for _, e := range list {
		if off >= n {
			break
		}
		size := min(satMul(e.GetNumBlocks(), payload.BlockSize), n-off)
		if _, err := at(e, 0, size, limit, op, "reads"); err != nil {
			return nil, err
		}
		off += size
	}
	if off < n {
		return nil, failf(op, "reads %d bytes from extents of %d", n, off)
	}
	buf := make([]byte, n)
	off = 0
	for _, e := range list {
		if off >= n {
			break
		}
		size := min(satMul(e.GetNumBlocks(), payload.BlockSize), n-off)
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
		room := satMul(e.GetNumBlocks(), payload.BlockSize) - w.pos
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
		if w.pos == satMul(e.GetNumBlocks(), payload.BlockSize) {
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
