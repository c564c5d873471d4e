package generate

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/internal/bsdiff"
	"github.com/augen-project/augen/payload"
)

// File is an input read at random offsets (an *os.File).
type File struct {
	R    io.ReaderAt
	Size int64
}

// DeltaOptions describe a delta payload from Old to New.
type DeltaOptions struct {
	// Old and New are the partition images; they must be the same size,
	// a multiple of 4096 (delta_generator's rule).
	Old, New File
	// PartitionSize is the size of the USR partition on the machines the
	// delta is for (0: the old image's size). The client hashes its whole
	// running partition (FilesystemCopierAction reads the device to its
	// end) and compares that with old_partition_info, so the old info
	// describes the old image followed by zeros up to PartitionSize: what
	// a machine's partition holds past the image, since the install image
	// leaves it zero and every update copies it along (doc/payload-format.md
	// §3.1). Flatcar's partitions are 1 GiB (installed before 2025-09) or
	// 2 GiB; a delta applies on one of them only.
	PartitionSize int64
	// OldKernel and Kernel: with both, the kernel procedure is a delta;
	// with only Kernel, a full kernel procedure.
	OldKernel, Kernel File
	// Workers diff runs in parallel; 0 means GOMAXPROCS.
	Workers int
	// Progress, if set, is called with new-image bytes planned so far.
	Progress augen.Progress
	// Log receives notes: an image whose files cannot be read is planned
	// block by block.
	Log augen.Log
}

// Tuning of the planner.
const (
	runBlocks   = 256     // a changed run is diffed in pieces of at most 1 MiB
	srcMargin   = 1 << 16 // old data around a matched region, for shifted content
	maxSrcBytes = 8 << 20 // a BSDIFF source is at most this (memory ~13×)
	maxSources  = 4       // matched old regions per changed run
)

// op is a planned operation.
type op struct {
	typ      payload.OperationType
	src, dst []*payload.Extent
	srcLen   uint64 // BSDIFF
	dstLen   uint64 // BSDIFF
	data     []byte
	// fullSize is the data size as a full operation (-1: not known).
	fullSize int
	// noMerge: a cycle holding o was refused by mergeCycle.
	noMerge bool
	// raw: o is a REPLACE of another compressor's output (a btrfs zstd
	// extent), which bzip2 would only make larger.
	raw bool
}

// firstDst is the first block o writes, which orders operations.
func (o *op) firstDst() uint64 { return o.dst[0].GetStartBlock() }

// dstBlocks is how many blocks o writes.
func (o *op) dstBlocks() uint64 {
	var n uint64
	for _, e := range o.dst {
		n += e.GetNumBlocks()
	}
	return n
}

// Delta plans a delta payload and returns its unsigned manifest and blobs.
func Delta(ctx context.Context, opts DeltaOptions) (*payload.Manifest, []byte, error) {
	if opts.Old.Size != opts.New.Size || opts.New.Size <= 0 || opts.New.Size%payload.BlockSize != 0 {
		return nil, nil, fmt.Errorf("%w: old (%d bytes) and new (%d bytes) images must have the same size, a non-zero multiple of %d",
			ErrInput, opts.Old.Size, opts.New.Size, payload.BlockSize)
	}
	if opts.PartitionSize != 0 && opts.PartitionSize < opts.Old.Size {
		return nil, nil, fmt.Errorf("%w: the partition size %d is smaller than the old image (%d bytes), which the partition holds", ErrInput, opts.PartitionSize, opts.Old.Size)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	nBlocks := uint64(opts.New.Size / payload.BlockSize)

	// The kernel is diffed while the partition is planned.
	type kernelResult struct {
		proc  *payload.Procedure
		blobs bytes.Buffer
		err   error
	}
	kernel := make(chan *kernelResult, 1)
	if opts.Kernel.R != nil {
		go func() {
			k := &kernelResult{}
			k.proc, k.err = kernelProcedure(opts.OldKernel, opts.Kernel, &k.blobs)
			kernel <- k
		}()
	}
	// Both images are hashed at once: two sequential reads.
	var oldSums [][16]byte
	var oldInfo *payload.InstallInfo
	var oldErr error
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		oldSums, oldInfo, oldErr = blockSums(opts.Old, max(opts.PartitionSize-opts.Old.Size, 0))
	}()
	newSums, newInfo, err := blockSums(opts.New, 0)
	<-hashed
	if err = cmp.Or(oldErr, err); err != nil {
		return nil, nil, err
	}
	// The old image's anchors are indexed while the files are planned
	// and diffed (diffAll waits for them only for the changed runs).
	index := make(chan indexResult, 1)
	go func() {
		idx, err := buildIndex(opts.Old.R, opts.Old.Size)
		index <- indexResult{idx, err}
	}()
	// Where each old block's content can be found, preferring blocks the
	// update leaves alone: reading those never conflicts with a write.
	unchanged := make([]bool, nBlocks)
	for i := range nBlocks {
		unchanged[i] = oldSums[i] == newSums[i]
	}
	where := map[[16]byte]uint64{}
	for i := range nBlocks {
		cur, seen := where[oldSums[i]]
		if !seen || (!unchanged[cur] && unchanged[i]) {
			where[oldSums[i]] = i
		}
	}

	// Changed files with an old version are diffed file by file; the
	// blocks they claim are not planned again below.
	claimed := make([]bool, nBlocks)
	var jobs []fileJob
	if oldMap, newMap, why := readFileMaps(opts); why != nil {
		opts.Log.Note(fmt.Sprintf("planning block by block, without files: %v", why))
	} else {
		jobs = planFiles(oldMap, newMap, unchanged, func(b uint64) bool { _, ok := where[newSums[b]]; return ok }, claimed)
	}
	skip := func(b uint64) bool { return unchanged[b] || claimed[b] }

	var ops []*op
	var changed [][2]uint64 // runs of new blocks with no identical old block
	for i := uint64(0); i < nBlocks; {
		if skip(i) {
			i++
			continue
		}
		if src, ok := where[newSums[i]]; ok {
			// Coalesce new blocks whose sources are consecutive too.
			j := i + 1
			for j < nBlocks && !skip(j) && j-i < 1<<16 {
				s, ok := where[newSums[j]]
				if !ok || s != src+(j-i) {
					break
				}
				j++
			}
			ops = append(ops, &op{typ: payload.OpMove, src: extents(src, j-i), dst: extents(i, j-i), fullSize: -1})
			i = j
			continue
		}
		j := i + 1
		for j < nBlocks && j-i < runBlocks && !skip(j) {
			if _, ok := where[newSums[j]]; ok {
				break
			}
			j++
		}
		changed = append(changed, [2]uint64{i, j})
		i = j
	}

	// Files are diffed first; the runs left wait for the index.
	waitIndex := sync.OnceValues(func() (anchorIndex, error) {
		ir := <-index
		return ir.idx, ir.err
	})
	diffed, err := diffAll(ctx, opts, waitIndex, changed, jobs, workers)
	if err != nil {
		return nil, nil, err
	}
	ops = append(ops, diffed...)
	if ops, err = mergeFull(ops, opts.New.R, workers); err != nil {
		return nil, nil, err
	}
	ordered, err := order(ops, nBlocks, func(o *op) error { return o.makeFull(opts.New.R) },
		func(c []*op) (*op, error) { return mergeCycle(opts, c) })
	if err != nil {
		return nil, nil, err
	}

	m := &payload.Manifest{
		BlockSize:        proto.Uint32(payload.BlockSize),
		OldPartitionInfo: oldInfo,
		NewPartitionInfo: newInfo,
	}
	var blobs bytes.Buffer
	for _, o := range ordered {
		m.PartitionOperations = append(m.PartitionOperations, o.manifestOp(&blobs))
	}
	if opts.Kernel.R != nil {
		k := <-kernel
		if k.err != nil {
			return nil, nil, k.err
		}
		// Its blob, made with offsets from 0, follows the partition's.
		base := uint32(blobs.Len())
		for _, kop := range k.proc.Operations {
			if kop.DataOffset != nil {
				kop.DataOffset = proto.Uint32(base + kop.GetDataOffset())
			}
		}
		blobs.Write(k.blobs.Bytes())
		m.Procedures = append(m.Procedures, k.proc)
		for _, kop := range k.proc.Operations {
			if kop.GetDataLength() > 0 {
				m.NoopOperations = append(m.NoopOperations, noopFor(kop))
			}
		}
	}
	if blobs.Len() > int(^uint32(0)) {
		return nil, nil, fmt.Errorf("%w: delta data exceeds 4 GiB", ErrInput)
	}
	return m, blobs.Bytes(), nil
}

// indexResult is buildIndex's result, handed over by a goroutine.
type indexResult struct {
	idx anchorIndex
	err error
}

func extents(start, n uint64) []*payload.Extent {
	return []*payload.Extent{{StartBlock: proto.Uint64(start), NumBlocks: proto.Uint64(n)}}
}

// blockSums hashes every block of f (and the whole file) in one read.
//
// The returned info covers the image followed by pad zero bytes (the rest
// of the partition the image sits in).
func blockSums(f File, pad int64) ([][16]byte, *payload.InstallInfo, error) {
	sums := make([][16]byte, f.Size/payload.BlockSize)
	whole := sha256.New()
	buf := make([]byte, 1<<20)
	sr := io.NewSectionReader(f.R, 0, f.Size)
	var blk int
	for {
		n, err := io.ReadFull(sr, buf)
		for off := 0; off+payload.BlockSize <= n; off += payload.BlockSize {
			s := sha256.Sum256(buf[off : off+payload.BlockSize])
			copy(sums[blk][:], s[:16])
			blk++
		}
		whole.Write(buf[:n])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if blk != len(sums) {
		return nil, nil, fmt.Errorf("%w: image shorter than its size", ErrInput)
	}
	if pad > 0 {
		if _, err := io.CopyN(whole, zeroReader{}, pad); err != nil {
			return nil, nil, err
		}
	}
	return sums, &payload.InstallInfo{Size: proto.Uint64(uint64(f.Size + pad)), Hash: whole.Sum(nil)}, nil
}

// zeroReader reads zeros forever.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// diffAll plans the changed files (diffFile) and the changed runs left
// (diffRun) on several goroutines. The result is in job order, so the same
// inputs give the same plan.
func diffAll(ctx context.Context, opts DeltaOptions, index func() (anchorIndex, error), runs [][2]uint64, files []fileJob, workers int) ([]*op, error) {
	n := len(files) + len(runs)
	out := make([][]*op, n)
	errs := make([]error, n)
	work := func(i int) (int64, error) {
		if i < len(files) {
			out[i], errs[i] = diffFile(opts, files[i])
			return int64(len(files[i].dst)) * payload.BlockSize, errs[i]
		}
		r := runs[i-len(files)]
		idx, err := index()
		if err != nil {
			errs[i] = err
			return 0, err
		}
		out[i], errs[i] = diffRun(opts, idx, r)
		return int64(r[1]-r[0]) * payload.BlockSize, errs[i]
	}
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var done, total int64
	for _, f := range files {
		total += int64(len(f.dst)) * payload.BlockSize
	}
	for _, r := range runs {
		total += int64(r[1]-r[0]) * payload.BlockSize
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				bytes, _ := work(i)
				if opts.Progress != nil {
					mu.Lock()
					done += bytes
					opts.Progress("diffing", done, total)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var ops []*op
	for i := range n {
		if errs[i] != nil {
			return nil, errs[i]
		}
		ops = append(ops, out[i]...)
	}
	return ops, nil
}

// diffRun plans a changed run: a BSDIFF from the old regions its anchors
// point to, when that is smaller than writing it in full (replaceRaw).
func diffRun(opts DeltaOptions, idx anchorIndex, run [2]uint64) ([]*op, error) {
	start, n := run[0], run[1]-run[0]
	data := make([]byte, n*payload.BlockSize)
	if _, err := opts.New.R.ReadAt(data, int64(start*payload.BlockSize)); err != nil && err != io.EOF {
		return nil, err
	}
	full, err := replaceRaw(extents(start, n), data)
	if err != nil {
		return nil, err
	}
	src := sourceRegions(idx, data, int64(start*payload.BlockSize), opts.Old.Size)
	if len(src) == 0 {
		return full, nil
	}
	var srcData []byte
	for _, r := range src {
		b := make([]byte, r[1]-r[0])
		if _, err := opts.Old.R.ReadAt(b, r[0]); err != nil && err != io.EOF {
			return nil, err
		}
		srcData = append(srcData, b...)
	}
	patch, err := bsdiff.Diff(srcData, data)
	if err != nil {
		return nil, err
	}
	size := 0
	for _, o := range full {
		size += len(o.data)
	}
	if len(patch) >= size {
		return full, nil
	}
	o := &op{typ: payload.OpBsdiff, dst: extents(start, n), data: patch, fullSize: size}
	for _, r := range src {
		o.src = append(o.src, extents(uint64(r[0])/payload.BlockSize, uint64(r[1]-r[0])/payload.BlockSize)...)
	}
	o.srcLen, o.dstLen = uint64(len(srcData)), uint64(len(data))
	return []*op{o}, nil
}

// sourceRegions picks the old byte ranges (block-aligned, disjoint, in
// order, at most maxSrcBytes together) a changed run is diffed against:
// the run mapped through the diagonals its anchors vote for, with a margin.
func sourceRegions(idx anchorIndex, data []byte, base, oldSize int64) [][2]int64 {
	// Without anchors in common there is nothing to diff against: the
	// same position in the old image holds unrelated data (measured on the
	// corpus: diffing against it made deltas 6% larger and 24% slower).
	diags := idx.diagonals(data, base, maxSources)
	var regions [][2]int64
	total := int64(0)
	// A short run (a 16 KiB btrfs node, a few inodes) shifted by more
	// than twice its length would vote for another diagonal; a wider
	// margin only makes the suffix sort longer (btrfs corpus: sources
	// 32 MB -> 22 MB, delta +0.03%).
	margin := min(srcMargin, max(payload.BlockSize, 2*int64(len(data))))
	for _, d := range diags {
		lo := alignDown(max(0, base+d-margin))
		hi := alignUp(min(oldSize, base+d+int64(len(data))+margin))
		if hi <= lo {
			continue
		}
		if total+(hi-lo) > maxSrcBytes {
			break
		}
		regions = append(regions, [2]int64{lo, hi})
		total += hi - lo
	}
	return mergeRegions(regions)
}

func alignDown(x int64) int64 { return x / payload.BlockSize * payload.BlockSize }
func alignUp(x int64) int64 {
	return (x + payload.BlockSize - 1) / payload.BlockSize * payload.BlockSize
}

// mergeRegions sorts and merges overlapping ranges.
func mergeRegions(r [][2]int64) [][2]int64 {
	for i := 1; i < len(r); i++ {
		for j := i; j > 0 && r[j][0] < r[j-1][0]; j-- {
			r[j], r[j-1] = r[j-1], r[j]
		}
	}
	var out [][2]int64
	for _, x := range r {
		if n := len(out); n > 0 && x[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], x[1])
			continue
		}
		out = append(out, x)
	}
	return out
}

// mergeFull packs the full operations (REPLACE_BZ, REPLACE), in block
// order, into groups of at most runBlocks blocks, each one operation with
// several destination extents, wherever that is smaller: scattered small
// writes (inode tables, directories, small new files) compress better as
// one bzip2 stream, and each operation costs a manifest entry and a hash.
// Full operations read nothing, so grouping them adds no ordering
// constraint that could form a cycle. Raw REPLACEs (another compressor's
// output) are packed among themselves, as one REPLACE without bzip2.
func mergeFull(ops []*op, newImg io.ReaderAt, workers int) ([]*op, error) {
	var full, raw, out []*op
	for _, o := range ops {
		switch {
		case o.raw:
			raw = append(raw, o)
		case len(o.src) == 0 && o.typ != payload.OpMove:
			full = append(full, o)
		default:
			out = append(out, o)
		}
	}
	groups := groupFull(full)
	for _, g := range groupFull(raw) {
		if len(g) == 1 {
			out = append(out, g...)
			continue
		}
		m := &op{typ: payload.OpReplace, raw: true}
		for _, o := range g {
			m.dst = append(m.dst, o.dst...)
			m.data = append(m.data, o.data...)
		}
		m.fullSize = len(m.data)
		out = append(out, m)
	}
	// Each group is compressed as one on its own goroutine; the result
	// keeps group order, so the plan does not depend on the core count.
	merged := make([][]*op, len(groups))
	errs := make([]error, len(groups))
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range next {
				merged[g], errs[g] = mergeGroup(groups[g], newImg)
			}
		}()
	}
	for g := range groups {
		next <- g
	}
	close(next)
	wg.Wait()
	for g := range groups {
		if errs[g] != nil {
			return nil, errs[g]
		}
		out = append(out, merged[g]...)
	}
	return out, nil
}

// groupFull sorts ops by the first block they write and cuts them into
// groups of at most runBlocks blocks (an operation larger than that is a
// group of its own).
func groupFull(ops []*op) [][]*op {
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].firstDst() < ops[j].firstDst() })
	var groups [][]*op
	for i := 0; i < len(ops); {
		j, blocks := i, uint64(0)
		for j < len(ops) && (j == i || blocks+ops[j].dstBlocks() <= runBlocks) {
			blocks += ops[j].dstBlocks()
			j++
		}
		groups = append(groups, ops[i:j])
		i = j
	}
	return groups
}

// mergeGroup is one operation writing all of group's blocks, when that is
// smaller than the group; else the group.
func mergeGroup(group []*op, newImg io.ReaderAt) ([]*op, error) {
	if len(group) == 1 {
		return group, nil
	}
	m := &op{}
	size := 0
	for _, o := range group {
		m.dst = append(m.dst, o.dst...)
		size += len(o.data)
	}
	if err := m.makeFull(newImg); err != nil {
		return nil, err
	}
	if len(m.data) < size {
		return []*op{m}, nil
	}
	return group, nil
}

// setFull makes o write data with REPLACE_BZ, or REPLACE when bzip2 does
// not help.
func (o *op) setFull(data []byte) error {
	w := workers.Get().(*worker)
	j := &job{raw: data, n: len(data)}
	w.compress(j, nil)
	workers.Put(w)
	o.typ, o.data, o.src, o.srcLen, o.dstLen = j.typ, j.blob, nil, 0, 0
	o.fullSize = len(o.data)
	return nil
}

// makeFull turns o into a full operation (to break a dependency cycle).
func (o *op) makeFull(newImg io.ReaderAt) error {
	data, err := readExtents(newImg, o.dst)
	if err != nil {
		return err
	}
	return o.setFull(data)
}

// readExtents reads the blocks of ext, in order.
func readExtents(r io.ReaderAt, ext []*payload.Extent) ([]byte, error) {
	var n uint64
	for _, e := range ext {
		n += e.GetNumBlocks()
	}
	data := make([]byte, n*payload.BlockSize)
	at := data
	for _, e := range ext {
		b := at[:e.GetNumBlocks()*payload.BlockSize]
		if _, err := r.ReadAt(b, int64(e.GetStartBlock()*payload.BlockSize)); err != nil && err != io.EOF {
			return nil, err
		}
		at = at[len(b):]
	}
	return data, nil
}

func (o *op) manifestOp(blobs *bytes.Buffer) *payload.Operation {
	mo := &payload.Operation{Type: o.typ.Enum(), SrcExtents: o.src, DstExtents: o.dst}
	if len(o.data) > 0 {
		sum := sha256.Sum256(o.data)
		mo.DataOffset = proto.Uint32(uint32(blobs.Len()))
		mo.DataLength = proto.Uint32(uint32(len(o.data)))
		mo.DataSha256Hash = sum[:]
		blobs.Write(o.data)
	}
	if o.typ == payload.OpBsdiff {
		mo.SrcLength = proto.Uint64(o.srcLen)
		mo.DstLength = proto.Uint64(o.dstLen)
	}
	return mo
}

func noopFor(op *payload.Operation) *payload.Operation {
	return &payload.Operation{
		Type:           payload.OpReplace.Enum(),
		DataOffset:     proto.Uint32(op.GetDataOffset()),
		DataLength:     proto.Uint32(op.GetDataLength()),
		DataSha256Hash: op.DataSha256Hash,
		DstExtents:     []*payload.Extent{{StartBlock: proto.Uint64(payload.SparseHole), NumBlocks: proto.Uint64(payload.Blocks(uint64(op.GetDataLength())))}},
	}
}

// kernelProcedure is one whole-file operation, as delta_generator makes it:
// BSDIFF from the old kernel when that is smallest, else REPLACE_BZ or
// REPLACE; without an old kernel, the same whole-file REPLACE_BZ or
// REPLACE.
func kernelProcedure(oldK, newK File, blobs *bytes.Buffer) (*payload.Procedure, error) {
	if newK.Size <= 0 {
		return nil, fmt.Errorf("%w: the kernel is empty", ErrInput)
	}
	read := func(f File) ([]byte, error) {
		b := make([]byte, f.Size)
		_, err := f.R.ReadAt(b, 0)
		if err == io.EOF {
			err = nil
		}
		return b, err
	}
	nk, err := read(newK)
	if err != nil {
		return nil, err
	}
	newSum := sha256.Sum256(nk)
	p := &payload.Procedure{Type: payload.ProcKernel.Enum(), NewInfo: &payload.InstallInfo{Size: proto.Uint64(uint64(len(nk))), Hash: newSum[:]}}
	dstBlocks := payload.Blocks(uint64(len(nk)))
	o := &op{dst: extents(0, dstBlocks)}
	if err := o.setFull(nk); err != nil {
		return nil, err
	}
	if oldK.R != nil {
		if oldK.Size <= 0 {
			return nil, fmt.Errorf("%w: the old kernel is empty", ErrInput)
		}
		ok, err := read(oldK)
		if err != nil {
			return nil, err
		}
		oldSum := sha256.Sum256(ok)
		p.OldInfo = &payload.InstallInfo{Size: proto.Uint64(uint64(len(ok))), Hash: oldSum[:]}
		patch, err := bsdiff.Diff(ok, nk)
		if err != nil {
			return nil, err
		}
		if len(patch) < len(o.data) {
			o.typ, o.data = payload.OpBsdiff, patch
			o.src = extents(0, payload.Blocks(uint64(len(ok))))
			o.srcLen, o.dstLen = uint64(len(ok)), uint64(len(nk))
		}
	}
	if len(o.data) <= kernelChunkFrom {
		p.Operations = []*payload.Operation{o.manifestOp(blobs)}
		return p, nil
	}
	// A kernel whose one operation would carry more than a verifier holds
	// in memory (payload.DefaultMaxBlobSize) is sent as a full payload
	// sends it: 1 MiB chunks.
	for off := 0; off < len(nk); off += fullChunk {
		end := min(off+fullChunk, len(nk))
		c := &op{dst: extents(uint64(off)/payload.BlockSize, payload.Blocks(uint64(end-off)))}
		if err := c.setFull(nk[off:end]); err != nil {
			return nil, err
		}
		p.Operations = append(p.Operations, c.manifestOp(blobs))
	}
	return p, nil
}

// kernelChunkFrom is the size of a delta's kernel operation from which it
// is split into fullChunk pieces instead.
const (
	kernelChunkFrom = payload.DefaultMaxBlobSize / 2
	fullChunk       = 1 << 20
)

// breakCost is how many bytes of data making o full would add. A MOVE's
// full size is not known without compressing it: estimate 2:1.
func (o *op) breakCost() int {
	full := o.fullSize
	if full < 0 {
		full = int(o.dstBlocks() * payload.BlockSize / 2)
	}
	return full - len(o.data)
}
