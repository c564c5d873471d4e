package payload

import (
	"fmt"
	"io"
	"sort"

	"github.com/augen-project/augen/internal/fsmap"
)

// FileSummary tells what a payload does to the files of its new image:
// how many are left as they are, moved, diffed or replaced, and the data
// each kind costs. A payload names no files, so this needs the new image
// (augen payload inspect --image).
type FileSummary struct {
	// Filesystem is "ext2/3/4" or "btrfs".
	Filesystem string `json:"filesystem"`
	Files      int    `json:"files"`
	// Unchanged files are written by no operation; moved files only by
	// MOVEs; diffed files by at least one BSDIFF; replaced files by full
	// operations (and maybe MOVEs).
	Unchanged FileCount `json:"unchanged"`
	Moved     FileCount `json:"moved"`
	Diffed    FileCount `json:"diffed"`
	Replaced  FileCount `json:"replaced"`
	// Compressed is the part of Diffed and Replaced whose data the
	// filesystem holds compressed (btrfs zstd extents): diffing
	// compressed bytes gains far less.
	Compressed FileCount `json:"compressed"`
	// Other is the written blocks no file owns: metadata, directories,
	// inline data, free space (Files is 0).
	Other FileCount `json:"other"`
	// Costliest are the files that cost the most data, most first (at
	// most ten, none that cost nothing).
	Costliest []FileCost `json:"costliest"`
}

// FileCount is a number of files, the blocks they occupy, and the data
// bytes the operations writing them cost (an operation's data is shared
// among the files it writes, in proportion to their blocks).
type FileCount struct {
	Files     int    `json:"files"`
	Blocks    uint64 `json:"blocks"`
	DataBytes uint64 `json:"data_bytes"`
}

// FileCost is one file and what it costs.
type FileCost struct {
	Path      string `json:"path"`
	Kind      string `json:"kind"` // "moved", "diffed" or "replaced"
	Blocks    uint64 `json:"blocks"`
	DataBytes uint64 `json:"data_bytes"`
}

// SummarizeFiles maps the partition operations of m onto the files of
// the new image in r (size bytes). It fails with fsmap's errors when the
// image holds no filesystem augen reads.
func SummarizeFiles(m *Manifest, r io.ReaderAt, size int64) (*FileSummary, error) {
	fm, err := fsmap.Read(r, size)
	if err != nil {
		return nil, err
	}
	if size != int64(m.GetNewPartitionInfo().GetSize()) {
		return nil, fmt.Errorf("%w: the image is %d bytes, the payload's new partition %d", ErrInvalid, size, m.GetNewPartitionInfo().GetSize())
	}
	type acc struct {
		bsdiff, full, move bool
		bytes              float64
	}
	// Operations come from the payload: their extents are walked block by
	// block, so the total is bounded first (a valid plan writes each block
	// at most once; overflow-safe).
	var written uint64
	for _, op := range m.PartitionOperations {
		for _, e := range op.DstExtents {
			n := e.GetNumBlocks()
			if n > uint64(len(fm.Owner)) || written > uint64(len(fm.Owner)) {
				return nil, fmt.Errorf("%w: its operations write more blocks than the %d-block image holds", ErrInvalid, len(fm.Owner))
			}
			written += n
		}
	}
	if written > uint64(len(fm.Owner)) {
		return nil, fmt.Errorf("%w: its operations write %d blocks, more than the %d-block image holds", ErrInvalid, written, len(fm.Owner))
	}
	files := make([]acc, len(fm.Files))
	var otherBytes float64
	var otherBlocks uint64
	for _, op := range m.PartitionOperations {
		var n uint64
		for _, e := range op.DstExtents {
			n += e.GetNumBlocks()
		}
		if n == 0 {
			continue
		}
		per := float64(op.GetDataLength()) / float64(n)
		for _, e := range op.DstExtents {
			for b := e.GetStartBlock(); b < e.GetStartBlock()+e.GetNumBlocks() && b < uint64(len(fm.Owner)); b++ {
				o := fm.Owner[b]
				if o == 0 {
					otherBytes += per
					otherBlocks++
					continue
				}
				a := &files[o-1]
				a.bytes += per
				switch op.GetType() {
				case OpBsdiff:
					a.bsdiff = true
				case OpMove:
					a.move = true
				default:
					a.full = true
				}
			}
		}
	}
	s := &FileSummary{Filesystem: fm.Kind, Files: len(fm.Files)}
	for i, a := range files {
		f := &fm.Files[i]
		kind, c := "unchanged", &s.Unchanged
		switch {
		case a.bsdiff:
			kind, c = "diffed", &s.Diffed
		case a.full:
			kind, c = "replaced", &s.Replaced
		case a.move:
			kind, c = "moved", &s.Moved
		}
		for _, c := range []*FileCount{c, &s.Compressed} {
			if c == &s.Compressed && (!f.Compressed || (kind != "diffed" && kind != "replaced")) {
				continue
			}
			c.Files++
			c.Blocks += f.NumBlocks()
			c.DataBytes += uint64(a.bytes + 0.5)
		}
		if kind != "unchanged" && uint64(a.bytes+0.5) > 0 {
			s.Costliest = append(s.Costliest, FileCost{Path: f.Path, Kind: kind, Blocks: f.NumBlocks(), DataBytes: uint64(a.bytes + 0.5)})
		}
	}
	s.Other = FileCount{Blocks: otherBlocks, DataBytes: uint64(otherBytes + 0.5)}
	sort.SliceStable(s.Costliest, func(i, j int) bool { return s.Costliest[i].DataBytes > s.Costliest[j].DataBytes })
	s.Costliest = s.Costliest[:min(10, len(s.Costliest))]
	return s, nil
}
