// Package fsmap tells which file of a USR image owns which blocks: the
// regular files of an ext2/3/4 or btrfs filesystem, each with its data
// blocks in file order. The delta planner diffs a changed file against the
// old file of the same path with it, and inspect names what a payload did
// to each file.
package fsmap

import (
	"errors"
	"fmt"
	"io"

	"github.com/augen-project/augen/internal/btrfs"
	"github.com/augen-project/augen/internal/ext4"
)

// BlockSize is the unit of Run: the payload's block.
const BlockSize = 4096

// Limit bounds the walk of one image (directory entries plus extents): a
// 1 GiB USR image has about 30,000 files, and a crafted image cannot make
// the walk run for ever.
const Limit = 1 << 22

// ErrUnsupported is returned for an image holding no filesystem fsmap
// reads, or one whose layout is not in 4 KiB blocks.
var ErrUnsupported = errors.New("fsmap: no ext2/3/4 or btrfs filesystem in 4 KiB blocks")

// Run is a run of consecutive blocks of the image.
type Run struct{ Start, Count uint64 }

// File is a regular file and the image blocks its data occupies, in file
// order (holes left out).
type File struct {
	Path string
	// Links are the file's other paths (hard links).
	Links []string
	Size  int64
	// Blocks lists the data's blocks; a block listed by an earlier file
	// (shared or crafted extents), and an extent not starting on a block
	// boundary, are left out.
	Blocks []Run
	// Compressed is true when some of the blocks hold compressed data
	// (btrfs): they are the bytes the image holds, not the file's.
	Compressed bool
}

// NumBlocks is how many blocks f's data occupies.
func (f *File) NumBlocks() uint64 {
	var n uint64
	for _, r := range f.Blocks {
		n += r.Count
	}
	return n
}

// Map is the files of one image.
type Map struct {
	// Kind names the filesystem: "ext2/3/4" or "btrfs".
	Kind  string
	Files []File
	// Owner[b] is 1 + the index in Files of the file owning block b, or 0.
	Owner []int32
}

// Read maps the files of the image in r (size bytes). An image without a
// filesystem fsmap reads gives ErrUnsupported; a damaged one, the
// filesystem package's error.
func Read(r io.ReaderAt, size int64) (*Map, error) {
	if size <= 0 || size%BlockSize != 0 {
		return nil, fmt.Errorf("%w: image of %d bytes", ErrUnsupported, size)
	}
	m := &Map{Owner: make([]int32, size/BlockSize)}
	byIno := map[uint64]int{}
	add := func(path string, ino uint64, fsize int64, compressed bool, ext []extent) error {
		if i, ok := byIno[ino]; ok {
			m.Files[i].Links = append(m.Files[i].Links, path)
			return nil
		}
		byIno[ino] = len(m.Files)
		f := File{Path: path, Size: fsize, Compressed: compressed}
		idx := int32(len(m.Files) + 1)
		for _, e := range ext {
			if e.off < 0 || e.length < 0 || e.off%BlockSize != 0 {
				continue // not in whole blocks: left to the block method
			}
			// A partial last block (a btrfs extent's tail) still belongs here.
			for b := uint64(e.off / BlockSize); b < uint64((e.off+e.length+BlockSize-1)/BlockSize); b++ {
				if b >= uint64(len(m.Owner)) || m.Owner[b] != 0 {
					continue
				}
				m.Owner[b] = idx
				if k := len(f.Blocks) - 1; k >= 0 && f.Blocks[k].Start+f.Blocks[k].Count == b {
					f.Blocks[k].Count++
				} else {
					f.Blocks = append(f.Blocks, Run{b, 1})
				}
			}
		}
		m.Files = append(m.Files, f)
		return nil
	}
	switch {
	case ext4.Probe(r):
		fs, err := ext4.Open(r, size)
		if err != nil {
			return nil, err
		}
		if fs.BlockSize() != BlockSize {
			return nil, fmt.Errorf("%w: ext2/3/4 blocks of %d bytes", ErrUnsupported, fs.BlockSize())
		}
		m.Kind = "ext2/3/4"
		err = fs.Walk(Limit, func(p string, ino uint64, n int64, data []ext4.Extent) error {
			ext := make([]extent, len(data))
			for i, e := range data {
				ext[i] = extent{e.Offset, e.Length}
			}
			return add(p, ino, n, false, ext)
		})
		if err != nil {
			return nil, err
		}
	case btrfs.Probe(r):
		fs, err := btrfs.Open(r, size)
		if err != nil {
			return nil, err
		}
		m.Kind = "btrfs"
		err = fs.Walk(Limit, func(p string, ino uint64, n int64, data []btrfs.Extent) error {
			ext := make([]extent, len(data))
			compressed := false
			for i, e := range data {
				ext[i] = extent{e.Offset, e.Length}
				compressed = compressed || e.Compressed
			}
			return add(p, ino, n, compressed, ext)
		})
		if err != nil {
			return nil, err
		}
	default:
		return nil, ErrUnsupported
	}
	return m, nil
}

type extent struct{ off, length int64 }
