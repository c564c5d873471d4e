// Package apply executes a payload's operations on a target in place, with
// update_engine's semantics, so that a payload can be proven to rebuild what
// it claims before any machine downloads it.
//
// It is a model of the client, not an applier of augen's own: each rule
// names the code of flatcar/update_engine (delta_performer.cc,
// extent_writer.cc, bzip_extent_writer.cc, payload_processor.cc) or of the
// ChromiumOS bspatch it mirrors, and a differential test runs the client's
// own code on the same inputs (payload/apply/reference_test.go). Where the
// client's behaviour is an accident (a wrapping offset, a read of stale
// memory) or augen bounds the work, the input is refused with an error
// carrying augen.Stricter(rule); doc/payload-format.md §3.4 lists the rules.
//
// The client first copies the running partition into the target (so a
// delta's untouched blocks are already right) and then runs the operations
// in manifest order: partition operations, then each procedure's. Data is
// consumed for every operation; procedure data is applied to the kernel or
// PCR policy file. A full update starts from whatever the running system
// holds, so a full payload must write every block (and every byte of a
// file) before an operation reads it and by the time it ends: otherwise
// what it installs depends on the machine, and augen refuses it.
package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/augen-project/augen"
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

// stricterf is failf for a refusal the client would not make: rule names
// it in doc/payload-format.md §3.4.
func stricterf(op *payload.Op, rule, format string, args ...any) error {
	return failure{fmt.Errorf("%w: %s (%s): %s: %w", ErrApply, op.Where(), op.GetType(), fmt.Sprintf(format, args...), augen.Stricter(rule))}
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
	// PartitionSize, for a delta, is the size of the running partition
	// the target was copied from: the client's reads past it fail (a short
	// read of the device). 0 means unknown: reads past the target's end
	// read zeros.
	PartitionSize uint64
	// Procedures maps a procedure type to its file target. A file target
	// starts as the procedure's old_info.size bytes (a copy of the old
	// file) or empty (a full procedure); reads past its current end fail,
	// as the client's reads of the file do.
	Procedures map[payload.ProcedureType]Target
	// FileSizes holds the current size of a delta procedure's file target
	// (the whole old file, as KernelCopierAction copies it); absent means
	// the procedure's old_info.size.
	FileSizes map[payload.ProcedureType]uint64
	// TempDir holds the output of large operations while they are made
	// ("" means os.TempDir()): memory stays bounded whatever the payload.
	TempDir string
	// Counters, if set, is told how much work the payload caused, so that
	// tests can prove a crafted payload was stopped early.
	Counters *Counters
	// Progress, if set, is told as each operation starts where in the
	// payload file its data ends.
	Progress func(fileOffset int64)
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
	// WorkFactor bounds the bytes all operations together may read and
	// write: WorkFactor times the partition and files they rebuild, plus
	// WorkSlack. A full payload writes each block once (1x); a delta reads
	// each old file about once and writes each new block once (about 2x,
	// 2.6x with cycles merged); so 8x leaves room for any honest plan,
	// while a small payload of operations that each move the whole
	// partition again (hundreds of thousands fit in a few MB of manifest)
	// is refused before it runs for days.
	WorkFactor = 8
	WorkSlack  = 64 << 20
	// aheadBytes is the largest output decoded ahead of its turn on
	// another core; larger operations are decoded when they are applied,
	// so at most 2×GOMAXPROCS small outputs are held at once.
	aheadBytes = 4 << 20
	// copyChunk is how much of a spooled output is copied to the target
	// at a time.
	copyChunk = 1 << 20
	// wrapBlock is the first block whose byte offset no longer fits the
	// int64 the client's code computes it in (start_block * 4096).
	wrapBlock = 1 << 51
)

// Apply runs every remaining operation of pr on t. It returns once Next
// has returned io.EOF, so the whole file has been checked, or with ctx's
// error once ctx is done (checked before every operation).
//
// Operations are applied strictly in order, as the client applies them;
// only the decompression of small REPLACE_BZ operations runs ahead, on all
// cores, a bounded number of operations in advance. Every destination is
// checked against its target before its data is decompressed, and the
// decoder is never allowed to produce more than the destination holds.
// Before any operation runs, the work all of them declare is checked
// against WorkFactor.
func Apply(ctx context.Context, pr *payload.Reader, t *Targets) error {
	m := pr.Manifest()
	if t.Limit > MaxPartitionSize {
		return fmt.Errorf("%w: the partition is %d bytes, over augen's limit of %d", ErrApply, t.Limit, uint64(MaxPartitionSize))
	}
	st, err := newState(m, t)
	if err != nil {
		return err
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
			// A small blob is copied so that it can be decoded ahead; a
			// large one is used in place, and the next is read only once
			// the applier is done with it: one large blob in memory.
			if len(op.Data) <= aheadBytes {
				op.Data = append([]byte(nil), op.Data...)
			} else {
				p.release = make(chan struct{})
			}
			if op.GetType() == payload.OpReplaceBz {
				p.room, p.bound, p.err = room(op, limitFor(t, op))
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
			if p.release != nil {
				select {
				case <-p.release:
				case <-stop:
					return
				}
			}
		}
	}()
	err = st.applyInOrder(ctx, items, counters)
	close(stop)
	for range items { // let the reader goroutine finish
	}
	wg.Wait()
	if err != nil {
		return err
	}
	return st.finish()
}

type pending struct {
	op *payload.Op
	// release, if set, is closed once op's data (the reader's own
	// buffer) is no longer used.
	release chan struct{}
	err     error
	room    uint64 // bytes the destination can take (REPLACE_BZ)
	bound   string // the rule that cut room short, if any
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
// how much the decoder may produce before anything is decoded. bound
// names augen's rule when the extents hold more than the room (they run
// past the target's limit, or past MaxOpBytes): data that overflows the
// room is then refused under that rule, not as the client would.
func room(op *payload.Op, limit uint64) (n uint64, bound string, err error) {
	for _, e := range op.DstExtents {
		size := satMul(e.GetNumBlocks(), payload.BlockSize)
		if e.GetStartBlock() != payload.SparseHole {
			s := e.GetStartBlock()
			if s >= limit/payload.BlockSize {
				return 0, "", beyond(op, limit, "writes block %d", s)
			}
			if size > limit-s*payload.BlockSize {
				size, bound = limit-s*payload.BlockSize, "beyond-target"
			}
		}
		n = satAdd(n, size)
		if n >= MaxOpBytes {
			return MaxOpBytes, "limits", nil
		}
	}
	return n, bound, nil
}

// beyond refuses an access past augen's bound on a target: the partition's
// new size (the client's block device goes on) or MaxFileSize.
func beyond(op *payload.Op, limit uint64, format string, args ...any) error {
	return stricterf(op, "beyond-target", "%s, past the end of the target (%d bytes)", fmt.Sprintf(format, args...), limit)
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

// extentBytes is the byte size of the extents, saturating at MaxUint64.
func extentBytes(list []*payload.Extent) uint64 {
	var n uint64
	for _, e := range list {
		n = satAdd(n, satMul(e.GetNumBlocks(), payload.BlockSize))
	}
	return n
}

// opWork is the bytes op reads and writes, as declared by its manifest
// entry: extents count up to the target's limit (an access past it is
// refused when the operation runs), sparse holes in full. It saturates.
func opWork(op *payload.Operation, limit uint64) uint64 {
	clipped := func(list []*payload.Extent) uint64 {
		var n uint64
		for _, e := range list {
			size := satMul(e.GetNumBlocks(), payload.BlockSize)
			if s := e.GetStartBlock(); s != payload.SparseHole {
				if s >= limit/payload.BlockSize {
					continue
				}
				size = min(size, limit-s*payload.BlockSize)
			}
			n = satAdd(n, size)
		}
		return n
	}
	switch op.GetType() {
	case payload.OpMove:
		return satAdd(clipped(op.SrcExtents), clipped(op.DstExtents))
	case payload.OpBsdiff:
		return satAdd(satAdd(op.GetSrcLength(), op.GetDstLength()), uint64(op.GetDataLength()))
	default:
		return satAdd(min(clipped(op.DstExtents), MaxOpBytes), uint64(op.GetDataLength()))
	}
}

func (st *state) applyInOrder(ctx context.Context, items <-chan *pending, c *Counters) error {
	for p := range items {
		if err := st.applyOne(ctx, p, c); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
	return errors.New("apply: the payload reader stopped without an end")
}

// applyOne applies one operation; io.EOF means the payload ended.
func (st *state) applyOne(ctx context.Context, p *pending, c *Counters) error {
	if p.release != nil {
		defer close(p.release)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	<-p.done
	if p.err == io.EOF {
		return io.EOF
	}
	if p.err != nil && p.op == nil {
		return p.err
	}
	op := p.op
	if st.progress != nil {
		st.progress(op.FileOffset + int64(op.GetDataLength()))
	}
	var g *target
	if op.Procedure < 0 {
		g = st.part
	} else {
		proc := st.m.Procedures[op.Procedure]
		if proc.Type == nil {
			return nil // the client skips untyped procedures; data was consumed
		}
		g = st.files[proc.GetType()]
	}
	if g == nil {
		return nil
	}
	c.Operations.Add(1)
	if op.GetType() != payload.OpReplaceBz {
		return g.applyOp(op)
	}
	if p.err != nil {
		var fe failure
		if errors.As(p.err, &fe) {
			return p.err
		}
		return bzErr(op, p.err, p.bound)
	}
	if p.decoded != nil {
		return g.writeExtents(op, op.DstExtents, p.decoded, true)
	}
	// A large blob is written block by block as it is decoded, as
	// BzipExtentWriter writes it: memory is one bzip2 block's output, not
	// the operation's.
	w := &extentWriter{g: g, op: op}
	n, err := pbzip2.DecodeOneTo(op.Data, int(p.room), w.write)
	c.Decompressed.Add(int64(n))
	if err != nil {
		var fe failure
		if errors.As(err, &fe) {
			return err
		}
		return bzErr(op, err, p.bound)
	}
	return w.finish()
}

// bzErr is the error for a REPLACE_BZ blob the decoder refused.
func bzErr(op *payload.Op, err error, bound string) error {
	switch {
	case errors.Is(err, pbzip2.ErrStricterThanLibbzip2):
		return stricterf(op, "bzip2-replace", "%v", err)
	case bound == "limits":
		return stricterf(op, "limits", "%v (augen decodes at most %d bytes per operation)", err, MaxOpBytes)
	case bound != "" && errors.Is(err, pbzip2.ErrTooLarge):
		return stricterf(op, bound, "%v (its extents run past the end of the target)", err)
	}
	return failf(op, "%v", err)
}

// applyOp runs a REPLACE, MOVE or BSDIFF (delta_performer.cc
// PerformOperation).
func (g *target) applyOp(op *payload.Op) error {
	switch op.GetType() {
	case payload.OpReplace:
		// PerformReplaceOperation: ZeroPadExtentWriter over a
		// DirectExtentWriter.
		return g.writeExtents(op, op.DstExtents, op.Data, true)
	case payload.OpMove:
		// PerformMoveOperation: every source extent read whole (PReadAll
		// of num_blocks * 4096: a short read fails), then written.
		n := extentBytes(op.SrcExtents)
		if n > MaxOpBytes {
			return stricterf(op, "limits", "reads %d bytes, more than the %d a MOVE may hold in memory", n, uint64(MaxOpBytes))
		}
		if r, _, err := room(op, g.limit); err != nil {
			return err
		} else if r < n {
			return beyond(op, g.limit, "writes %d bytes", n)
		}
		if n <= spoolMem {
			buf := make([]byte, 0, n)
			for _, e := range op.SrcExtents {
				size := e.GetNumBlocks() * payload.BlockSize
				b := buf[len(buf) : len(buf)+int(size)]
				if err := g.read(op, b, e.GetStartBlock()*payload.BlockSize, "reads"); err != nil {
					return err
				}
				buf = buf[:len(buf)+int(size)]
			}
			return g.writeExtents(op, op.DstExtents, buf, false)
		}
		// A large MOVE reads every source into a spool before it writes
		// (the client's buffer), a chunk at a time.
		sp := &spool{dir: g.tempDir}
		defer sp.close()
		chunkBuf := make([]byte, copyChunk)
		for _, e := range op.SrcExtents {
			size := e.GetNumBlocks() * payload.BlockSize
			for done := uint64(0); done < size; {
				c := min(size-done, copyChunk)
				if err := g.read(op, chunkBuf[:c], e.GetStartBlock()*payload.BlockSize+done, "reads"); err != nil {
					return err
				}
				if _, err := sp.Write(chunkBuf[:c]); err != nil {
					return err
				}
				done += c
			}
		}
		w := &extentWriter{g: g, op: op}
		from := sp.reader()
		for pos := int64(0); pos < sp.n; {
			c := min(sp.n-pos, copyChunk)
			if _, err := from.ReadAt(chunkBuf[:c], pos); err != nil {
				return err
			}
			if err := w.write(chunkBuf[:c]); err != nil {
				return err
			}
			pos += c
		}
		w.g.wrote(w.rs)
		return nil
	case payload.OpBsdiff:
		return g.bsdiff(op)
	}
	return failf(op, "unknown operation type")
}

// positions is the client's ExtentsToBsdiffPositionsString: each extent
// gets min(what is left of length, its size) bytes, and the total must be
// length. bspatch refuses an extent of 0 bytes ("error parsing extents")
// and an empty list ("error allocating extent array"), so every extent
// must get at least one byte.
func positions(op *payload.Op, list []*payload.Extent, length uint64, what string) ([]seg, error) {
	if len(list) == 0 {
		return nil, failf(op, "no %s extents: bspatch refuses an empty extent list", what)
	}
	segs := make([]seg, 0, len(list))
	var done uint64
	for i, e := range list {
		n := min(length-done, satMul(e.GetNumBlocks(), payload.BlockSize))
		if n == 0 {
			return nil, failf(op, "%s extent %d gets 0 of the %d bytes (%s_length %d): the client passes bspatch \"OFF:0\", which it refuses", what, i, length, what, length)
		}
		s := e.GetStartBlock()
		if s != payload.SparseHole && s >= wrapBlock {
			return nil, stricterf(op, "bsdiff-wrapping-offset", "%s extent %d at block %d: its byte offset wraps in the client's int64", what, i, s)
		}
		segs = append(segs, seg{block: s, n: n})
		done += n
	}
	if done != length {
		return nil, failf(op, "%s_length %d exceeds its extents (%d bytes)", what, length, done)
	}
	return segs, nil
}

// seg is one extent as bspatch gets it: a start block (or a hole) and the
// bytes of it used.
type seg struct {
	block uint64
	n     uint64
}

// bsdiff is PerformBsdiffOperation: bspatch run on the target itself with
// position strings from src_length and dst_length (absent means 0), then
// the end of the *last destination extent* zeroed when dst_length is not
// a whole number of blocks.
func (g *target) bsdiff(op *payload.Op) error {
	srcLen, dstLen := op.GetSrcLength(), op.GetDstLength()
	if srcLen > MaxOpBytes || dstLen > MaxOpBytes {
		return stricterf(op, "limits", "source %d or destination %d bytes exceed %d", srcLen, dstLen, uint64(MaxOpBytes))
	}
	src, err := positions(op, op.SrcExtents, srcLen, "src")
	if err != nil {
		return err
	}
	dst, err := positions(op, op.DstExtents, dstLen, "dst")
	if err != nil {
		return err
	}
	// Every destination byte is checked against the target first.
	for _, s := range dst {
		if s.block != payload.SparseHole && s.block*payload.BlockSize+s.n > g.limit {
			return beyond(op, g.limit, "writes block %d", s.block)
		}
	}
	tail := dstLen % payload.BlockSize
	var zeroAt uint64
	if tail != 0 {
		last := op.DstExtents[len(op.DstExtents)-1]
		if last.GetStartBlock() == payload.SparseHole {
			return stricterf(op, "bsdiff-hole-tail", "its last destination extent is a sparse hole and dst_length %d is not a whole number of blocks: the client zeroes bytes at an offset that wraps around", dstLen)
		}
		end := (last.GetStartBlock() + last.GetNumBlocks()) * payload.BlockSize
		if end > g.limit {
			return beyond(op, g.limit, "zeroes the end of block %d", last.GetStartBlock()+last.GetNumBlocks()-1)
		}
		zeroAt = end - (payload.BlockSize - tail)
	}
	out := &spool{dir: g.tempDir}
	defer out.close()
	err = bsdiff.PatchTo(&oldView{g: g, op: op, segs: src, size: srcLen}, op.Data, int64(dstLen), out)
	if err != nil {
		var fe failure
		if errors.As(err, &fe) {
			return err
		}
		if augen.StricterRule(err) != "" {
			return failure{fmt.Errorf("%w: %s (%s): %w", ErrApply, op.Where(), op.GetType(), err)}
		}
		return failf(op, "%v", err)
	}
	// bspatch writes the new data (which may be shorter than dst_length)
	// through the destination extents, once it is whole.
	var rs ranges
	rest, from := uint64(out.n), out.reader()
	var pos uint64
	buf := make([]byte, min(rest, copyChunk))
	for _, s := range dst {
		if rest == 0 {
			break
		}
		k := min(rest, s.n)
		if s.block != payload.SparseHole {
			off := s.block * payload.BlockSize
			for done := uint64(0); done < k; {
				c := min(k-done, uint64(len(buf)))
				if _, err := from.ReadAt(buf[:c], int64(pos+done)); err != nil {
					return err
				}
				if _, err := g.t.WriteAt(buf[:c], int64(off+done)); err != nil {
					return err
				}
				done += c
			}
			rs.add(off, k)
		}
		pos += k
		rest -= k
	}
	if tail != 0 {
		n := payload.BlockSize - tail
		if _, err := g.t.WriteAt(make([]byte, n), int64(zeroAt)); err != nil {
			return err
		}
		rs.add(zeroAt, n)
	}
	g.wrote(rs)
	return nil
}

// oldView is a BSDIFF's source as bspatch reads it: the source segments
// concatenated; sparse holes read as zeros.
type oldView struct {
	g    *target
	op   *payload.Op
	segs []seg
	size uint64
}

func (v *oldView) Size() int64 { return int64(v.size) }

func (v *oldView) ReadAt(p []byte, off int64) error {
	pos := uint64(0)
	o := uint64(off)
	for _, s := range v.segs {
		if len(p) == 0 {
			return nil
		}
		if o >= pos+s.n {
			pos += s.n
			continue
		}
		skip := o - pos
		n := min(uint64(len(p)), s.n-skip)
		if s.block == payload.SparseHole {
			clear(p[:n])
		} else if err := v.g.read(v.op, p[:n], s.block*payload.BlockSize+skip, "reads"); err != nil {
			return err
		}
		p = p[n:]
		o += n
		pos += s.n
	}
	return nil
}

// writeExtents writes data across extents in order, skipping sparse holes,
// as update_engine's DirectExtentWriter does; with pad, the last block
// written is filled with zeros (ZeroPadExtentWriter). Data that does not
// fit the extents fails, as in the client; its earlier part is written
// first there too.
func (g *target) writeExtents(op *payload.Op, extents []*payload.Extent, data []byte, pad bool) error {
	if pad && len(data)%payload.BlockSize != 0 {
		data = append(data, make([]byte, payload.BlockSize-len(data)%payload.BlockSize)...)
	}
	total := len(data)
	// Check every extent the data reaches before writing any.
	rest := uint64(len(data))
	for _, e := range extents {
		if rest == 0 {
			break
		}
		n := min(rest, satMul(e.GetNumBlocks(), payload.BlockSize))
		if s := e.GetStartBlock(); s != payload.SparseHole && (s >= g.limit/payload.BlockSize || s*payload.BlockSize+n > g.limit) {
			return beyond(op, g.limit, "writes block %d", s)
		}
		rest -= n
	}
	if rest > 0 {
		return failf(op, "its %d bytes of data exceed its destination extents (%d bytes)", total, extentBytes(extents))
	}
	var rs ranges
	for _, e := range extents {
		if len(data) == 0 {
			break
		}
		n := min(uint64(len(data)), e.GetNumBlocks()*payload.BlockSize)
		if e.GetStartBlock() != payload.SparseHole {
			off := e.GetStartBlock() * payload.BlockSize
			if _, err := g.t.WriteAt(data[:n], int64(off)); err != nil {
				return err
			}
			rs.add(off, n)
		}
		data = data[n:]
	}
	g.wrote(rs)
	return nil
}

// extentWriter writes data across an operation's destination extents as
// it comes, skipping sparse holes (DirectExtentWriter), and pads the last
// block with zeros when it is finished (ZeroPadExtentWriter).
type extentWriter struct {
	g     *target
	op    *payload.Op
	ext   int    // the extent being written
	off   uint64 // bytes of it written
	total uint64
	rs    ranges
}

func (w *extentWriter) write(p []byte) error {
	for len(p) > 0 {
		if w.ext >= len(w.op.DstExtents) {
			return failf(w.op, "its data exceed its destination extents (%d bytes)", extentBytes(w.op.DstExtents))
		}
		e := w.op.DstExtents[w.ext]
		size := satMul(e.GetNumBlocks(), payload.BlockSize)
		n := min(uint64(len(p)), size-w.off)
		if s := e.GetStartBlock(); s != payload.SparseHole {
			at := satAdd(satMul(s, payload.BlockSize), w.off)
			if at >= w.g.limit || n > w.g.limit-at {
				return beyond(w.op, w.g.limit, "writes block %d", s)
			}
			if _, err := w.g.t.WriteAt(p[:n], int64(at)); err != nil {
				return err
			}
			w.rs.add(at, n)
		}
		p = p[n:]
		w.off += n
		w.total += n
		if w.off == size {
			w.ext, w.off = w.ext+1, 0
		}
	}
	return nil
}

// finish pads the last block written with zeros and records what was
// written.
func (w *extentWriter) finish() error {
	if r := w.total % payload.BlockSize; r != 0 {
		if err := w.write(make([]byte, payload.BlockSize-r)); err != nil {
			return err
		}
	}
	w.g.wrote(w.rs)
	return nil
}
