package generate

import (
	"bytes"
	"fmt"
	"math"

	"github.com/augen-project/augen/internal/bsdiff"
	"github.com/augen-project/augen/internal/fsmap"
	"github.com/augen-project/augen/payload"
)

// File-aware planning. A changed file is diffed against the old file of
// the same path (or the one it was renamed from): the old version is the
// best source there is, wherever its blocks lie, and the blocks of both
// are known from the filesystem. What no file owns (inodes, directories,
// bitmaps, inline data) is left to the block method.

// Tuning of file diffs.
const (
	// pieceBlocks bounds the new data of one file operation (8 MiB):
	// bsdiff's memory is about 13× its source plus 3× its target.
	pieceBlocks = 2048
	// pieceMargin is the old data around a piece's proportional place in
	// the old file, for content that moved within the file.
	pieceMargin = 256
	// Compressed data (btrfs zstd extents, each 128 KiB of file content
	// compressed on its own) only resembles the old extent at about the
	// same place: smaller pieces against a small window there.
	compressedPiece  = 128
	compressedMargin = 64
)

// fileJob is a changed file of the new image with an old version.
type fileJob struct {
	path string
	// dst are the new file's changed blocks, in file order, with their
	// index in the file (idx) for proportional windows.
	dst []uint64
	idx []uint64
	// nNew is the new file's block count; src the old file's blocks.
	nNew uint64
	src  []fsmap.Run
	// compressed: either version holds compressed extents (btrfs).
	compressed bool
}

// planFiles picks the files of newMap worth diffing against their old
// version, and marks their blocks in claimed so the block method leaves
// them alone. A file whose changed blocks all exist somewhere in the old
// image is left to the block method too: MOVEs cost no data.
func planFiles(oldMap, newMap *fsmap.Map, unchanged []bool, inOld func(b uint64) bool, claimed []bool) []fileJob {
	oldByPath := make(map[string]int, len(oldMap.Files))
	byKey := map[string][]int{}
	for i, f := range oldMap.Files {
		for _, p := range append([]string{f.Path}, f.Links...) {
			oldByPath[p] = i
			k := renameKey(p)
			byKey[k] = append(byKey[k], i)
		}
	}
	newPaths := make(map[string]bool, len(newMap.Files))
	for _, f := range newMap.Files {
		newPaths[f.Path] = true
		for _, p := range f.Links {
			newPaths[p] = true
		}
	}
	var jobs []fileJob
	for _, f := range newMap.Files {
		var job fileJob
		missing := false
		var i uint64
		for _, r := range f.Blocks {
			for b := r.Start; b < r.Start+r.Count; b, i = b+1, i+1 {
				if b >= uint64(len(unchanged)) || unchanged[b] {
					continue
				}
				job.dst = append(job.dst, b)
				job.idx = append(job.idx, i)
				missing = missing || !inOld(b)
			}
		}
		if !missing {
			continue
		}
		old, ok := -1, false
		for _, p := range append([]string{f.Path}, f.Links...) {
			if old, ok = oldByPath[p]; ok {
				break
			}
		}
		if !ok {
			// Renamed: the same path up to version numbers, from a file
			// the new image no longer has; the closest in size wins.
			best := -1
			for _, p := range append([]string{f.Path}, f.Links...) {
				for _, c := range byKey[renameKey(p)] {
					if newPaths[oldMap.Files[c].Path] {
						continue
					}
					if best < 0 || absDiff(oldMap.Files[c].Size, f.Size) < absDiff(oldMap.Files[best].Size, f.Size) {
						best = c
					}
				}
			}
			if best < 0 {
				continue // a new file: the block method looks for its content
			}
			old = best
		}
		if len(oldMap.Files[old].Blocks) == 0 {
			continue
		}
		job.path, job.nNew, job.src = f.Path, i, oldMap.Files[old].Blocks
		job.compressed = f.Compressed || oldMap.Files[old].Compressed
		if job.compressed {
			// btrfs compresses each 128 KiB extent on its own, so the
			// unchanged extents of a rewritten file are the old blocks
			// at another place: MOVEs, not data to sort and search
			// (btrfs corpus: 25% of these blocks, delta 0.1% smaller).
			// Uncompressed files keep them: a MOVE per fragment costs
			// more manifest than the patch does (ext4: +2.7%).
			var dst, idx []uint64
			for k, b := range job.dst {
				if !inOld(b) {
					dst, idx = append(dst, b), append(idx, job.idx[k])
				}
			}
			job.dst, job.idx = dst, idx
		}
		for _, b := range job.dst {
			claimed[b] = true
		}
		jobs = append(jobs, job)
	}
	return jobs
}

func absDiff(a, b int64) int64 {
	if a < b {
		return b - a
	}
	return a - b
}

// renameKey is a path with every run of digits replaced by '#': the same
// key before and after a version bump (lib/modules/6.1.0-56-flatcar/… and
// …-57-…, libfoo.so.1.2.3 and libfoo.so.1.2.4).
func renameKey(p string) string {
	var b bytes.Buffer
	digits := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c >= '0' && c <= '9' {
			if !digits {
				b.WriteByte('#')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteByte(c)
	}
	return b.String()
}

// diffFile turns a file job into operations: pieces of at most
// pieceBlocks new blocks, each BSDIFF from the old file (all of it when it
// is small, else the part at the same relative place with a margin), or
// REPLACE_BZ / REPLACE when that is smaller.
func diffFile(opts DeltaOptions, job fileJob) ([]*op, error) {
	var nOld uint64
	for _, r := range job.src {
		nOld += r.Count
	}
	piece, margin, maxSrc := pieceBlocks, uint64(pieceMargin), uint64(maxSrcBytes/payload.BlockSize)
	if job.compressed {
		piece, margin, maxSrc = compressedPiece, compressedMargin, 2*compressedMargin+compressedPiece
	}
	var ops []*op
	for lo := 0; lo < len(job.dst); lo += piece {
		hi := min(len(job.dst), lo+piece)
		o := &op{dst: blockExtents(job.dst[lo:hi])}
		data, err := readExtents(opts.New.R, o.dst)
		if err != nil {
			return nil, err
		}
		// The old file, or its part at the same relative place.
		from, to := uint64(0), nOld
		if nOld > maxSrc {
			a := job.idx[lo] * nOld / job.nNew
			b := (job.idx[hi-1] + 1) * nOld / job.nNew
			from = a - min(a, margin)
			to = min(nOld, b+margin)
			if to-from > maxSrc {
				mid := (a + b) / 2
				from = mid - min(mid, maxSrc/2)
				to = min(nOld, from+maxSrc)
			}
		}
		src := sliceRuns(job.src, from, to)
		srcData, err := readExtents(opts.Old.R, src)
		if err != nil {
			return nil, err
		}
		// Compressed bytes that share nothing with the old ones are not
		// diffed (bsdiff would search every position of them for
		// nothing); like a patch that is not smaller, they are written
		// in full.
		// Uncompressed bytes that share nothing with the old ones are
		// written in full straight away, as a full payload writes them.
		if !job.compressed && unrelated(srcData, data) {
			full, err := replaceRaw(o.dst, data)
			if err != nil {
				return nil, err
			}
			ops = append(ops, full...)
			continue
		}
		var patch []byte
		if !job.compressed || similar(srcData, data) {
			if patch, err = bsdiff.Diff(srcData, data); err != nil {
				return nil, err
			}
		}
		if job.compressed && (patch == nil || len(patch) >= len(data)) {
			full, err := replaceRaw(o.dst, data)
			if err != nil {
				return nil, err
			}
			ops = append(ops, full...)
			continue
		}
		o.typ, o.data, o.src, o.fullSize = payload.OpBsdiff, patch, src, -1
		o.srcLen, o.dstLen = uint64(len(srcData)), uint64(len(data))
		// bzip2 seldom packs a file's blocks 16:1, so a patch that small
		// is kept without compressing the blocks to compare (most of
		// them are: a release changes a few bytes of most files).
		if !job.compressed && len(patch) > len(data)/16 {
			full := &op{dst: o.dst}
			if err := full.setFull(data); err != nil {
				return nil, err
			}
			if len(full.data) <= len(patch) {
				*o = *full
			} else {
				o.fullSize = full.fullSize
			}
		}
		ops = append(ops, o)
	}
	return ops, nil
}

// replaceRaw writes data (the blocks of dst, in order) in full: blocks
// that look like another compressor's output (a btrfs zstd extent) as
// REPLACE operations marked raw, which bzip2 is never offered; the rest
// (uncompressed extents, the zeros after a compressed extent's end, which
// were a quarter of these blocks on the btrfs corpus) as full operations
// that mergeFull may pack with others.
func replaceRaw(dst []*payload.Extent, data []byte) ([]*op, error) {
	var blocks []uint64
	for _, e := range dst {
		for b := e.GetStartBlock(); b < e.GetStartBlock()+e.GetNumBlocks(); b++ {
			blocks = append(blocks, b)
		}
	}
	random := make([]bool, len(blocks))
	for i := range blocks {
		random[i] = looksRandom(data[i*payload.BlockSize : (i+1)*payload.BlockSize])
	}
	var ops []*op
	for lo := 0; lo < len(blocks); {
		hi := lo + 1
		for hi < len(blocks) && random[hi] == random[lo] {
			hi++
		}
		o := &op{dst: blockExtents(blocks[lo:hi])}
		part := data[lo*payload.BlockSize : hi*payload.BlockSize]
		if random[lo] {
			o.typ, o.data, o.fullSize, o.raw = payload.OpReplace, part, len(part), true
		} else if err := o.setFull(part); err != nil {
			return nil, err
		}
		ops = append(ops, o)
		lo = hi
	}
	return ops, nil
}

// looksRandom reports whether a block's bytes have an order-0 entropy of
// at least 7.8 bits: compressed data (about 7.95 in a 4 KiB sample),
// which bzip2 cannot shrink. Code and text stay well below 7.
func looksRandom(block []byte) bool {
	var cnt [256]int
	for _, c := range block {
		cnt[c]++
	}
	// n·H = n·log2(n) − Σ k·log2(k)
	n := float64(len(block))
	sum := 0.0
	for _, k := range cnt {
		if k > 1 {
			sum += float64(k) * math.Log2(float64(k))
		}
	}
	return n*math.Log2(n)-sum >= 7.8*n
}

// similar reports whether at least an eighth of data's content-defined
// anchors (about one per 256 bytes) occur in old too.
func similar(old, data []byte) bool {
	hit, n := shared(old, data)
	return hit*8 >= n && hit > 0
}

// unrelated reports whether data shares (almost) nothing with old: of at
// least 64 content-defined anchors in data (about one per 256 bytes of
// varied content, so 16 KiB or more), fewer than one in 64 occur in old.
// Such data (a file replaced by other random or compressed bytes, a
// rebuilt archive) gives bsdiff nothing to match, but bsdiff would first
// suffix-sort all of old to find that out: seconds a piece, where the
// anchors take milliseconds.
func unrelated(old, data []byte) bool {
	hit, n := shared(old, data)
	return n >= 64 && hit*64 < n
}

// shared counts data's content-defined anchors (n) and those of them that
// occur in old too (hit).
func shared(old, data []byte) (hit, n int) {
	seen := map[uint64]bool{}
	anchors(old, 0, func(h uint64, _ int64) { seen[h] = true })
	anchors(data, 0, func(h uint64, _ int64) {
		n++
		if seen[h] {
			hit++
		}
	})
	return hit, n
}

// blockExtents coalesces blocks (in order) into extents.
func blockExtents(blocks []uint64) []*payload.Extent {
	var out []*payload.Extent
	for i := 0; i < len(blocks); {
		j := i + 1
		for j < len(blocks) && blocks[j] == blocks[j-1]+1 {
			j++
		}
		out = append(out, extents(blocks[i], uint64(j-i))...)
		i = j
	}
	return out
}

// sliceRuns is the extents of blocks [from, to) of the concatenated runs.
func sliceRuns(runs []fsmap.Run, from, to uint64) []*payload.Extent {
	var out []*payload.Extent
	var at uint64
	for _, r := range runs {
		lo, hi := max(at, from), min(at+r.Count, to)
		if lo < hi {
			out = append(out, extents(r.Start+(lo-at), hi-lo)...)
		}
		at += r.Count
	}
	return out
}

// readFileMaps is fileMaps; tests replace it with maps of their own.
var readFileMaps = fileMaps

// fileMaps reads the files of both images, or says why the block method
// is used instead.
func fileMaps(opts DeltaOptions) (oldMap, newMap *fsmap.Map, why error) {
	newMap, err := fsmap.Read(opts.New.R, opts.New.Size)
	if err != nil {
		return nil, nil, fmt.Errorf("new image: %w", err)
	}
	oldMap, err = fsmap.Read(opts.Old.R, opts.Old.Size)
	if err != nil {
		return nil, nil, fmt.Errorf("old image: %w", err)
	}
	return oldMap, newMap, nil
}

// Bounds of a merged cycle: the client holds an operation's source and
// result in memory.
const maxMergedBlocks = 16384 // 64 MiB each way, as a large file's BSDIFF

// mergeCycle turns a cycle of operations into one, or returns nil when it
// would be too large. MOVEs alone become one MOVE (sources and
// destinations in the same order). With BSDIFFs among them, one BSDIFF
// from all their sources to all their destinations, composed from their
// patches (bsdiff.Concat: a MOVE is a copy) without diffing again, and
// checked by applying it.
func mergeCycle(opts DeltaOptions, comp []*op) (*op, error) {
	var srcBlocks, dstBlocks uint64
	allMove := true
	for _, o := range comp {
		for _, e := range o.src {
			srcBlocks += e.GetNumBlocks()
		}
		dstBlocks += o.dstBlocks()
		allMove = allMove && o.typ == payload.OpMove
		if o.typ != payload.OpMove && o.typ != payload.OpBsdiff {
			return nil, nil // reads nothing: never in a cycle
		}
	}
	if srcBlocks > maxMergedBlocks || dstBlocks > maxMergedBlocks {
		return nil, nil
	}
	m := &op{typ: payload.OpMove, fullSize: -1}
	var parts []bsdiff.Part
	for _, o := range comp {
		m.src = append(m.src, o.src...)
		m.dst = append(m.dst, o.dst...)
		var srcBytes int64
		for _, e := range o.src {
			srcBytes += int64(e.GetNumBlocks() * payload.BlockSize)
		}
		p := bsdiff.Part{OldLen: srcBytes}
		if o.typ == payload.OpBsdiff {
			p.Patch = o.data
		}
		parts = append(parts, p)
	}
	if allMove {
		return m, nil
	}
	patch, err := bsdiff.Concat(parts)
	if err != nil {
		return nil, err
	}
	srcData, err := readExtents(opts.Old.R, m.src)
	if err != nil {
		return nil, err
	}
	dstData, err := readExtents(opts.New.R, m.dst)
	if err != nil {
		return nil, err
	}
	if got, err := bsdiff.Patch(srcData, patch, int64(len(dstData))); err != nil || !bytes.Equal(got, dstData) {
		return nil, fmt.Errorf("merging a cycle of %d operations: the composed patch does not rebuild their blocks (%v)", len(comp), err)
	}
	m.typ, m.data = payload.OpBsdiff, patch
	m.srcLen, m.dstLen = uint64(len(srcData)), uint64(len(dstData))
	return m, nil
}
