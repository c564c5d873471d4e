// Package ext4 reads files from an ext2, ext3 or ext4 filesystem image,
// read-only and without mounting: enough to find a release's os-release
// in a rebuilt /usr partition. It follows extents and the classic block
// map, linear and hashed directories, and symlinks inside the filesystem.
// Every structure is bounds-checked against the image before it is used.
package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/augen-project/augen/internal/fspath"
)

// ErrFormat is wrapped by every problem with the image.
var ErrFormat = errors.New("ext4: bad filesystem")

// ErrNotExist is returned for a path that is not in the filesystem.
var ErrNotExist = errors.New("ext4: no such file")

const (
	superOffset = 1024
	magic       = 0xEF53
	rootInode   = 2

	incompat64Bit      = 0x80
	incompatExtents    = 0x40
	flagExtents        = 0x80000
	flagInlineData     = 0x10000000
	maxDirSize         = 64 << 20
	maxExtentDepth     = 5
	modeTypeMask       = 0xF000
	modeDir            = 0x4000
	modeSymlink        = 0xA000
	extentHeaderMagic  = 0xF30A
	extentUninitialize = 32768
)

// Probe reports whether r holds an ext2/3/4 superblock.
func Probe(r io.ReaderAt) bool {
	var b [2]byte
	_, err := r.ReadAt(b[:], superOffset+56)
	return err == nil && binary.LittleEndian.Uint16(b[:]) == magic
}

// FS is an opened filesystem.
type FS struct {
	r              io.ReaderAt
	size           int64
	blockSize      int64
	inodesPerGroup uint32
	inodeSize      int64
	descSize       int64
	descStart      int64
	groups         uint32
	inodes         uint32
	// nodeBudget, when positive, is how many more extent tree nodes may
	// be read (Walk sets it: shared nodes could make a crafted tree
	// exponentially large).
	nodeBudget int
}

// Open reads the superblock of the filesystem in r (size bytes).
func Open(r io.ReaderAt, size int64) (*FS, error) {
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, superOffset); err != nil {
		return nil, fmt.Errorf("%w: superblock: %v", ErrFormat, err)
	}
	le := binary.LittleEndian
	if le.Uint16(sb[56:]) != magic {
		return nil, fmt.Errorf("%w: no ext2/3/4 superblock", ErrFormat)
	}
	logBS := le.Uint32(sb[24:])
	if logBS > 6 {
		return nil, fmt.Errorf("%w: block size 2^%d KiB", ErrFormat, logBS)
	}
	fs := &FS{r: r, size: size, blockSize: 1024 << logBS, inodesPerGroup: le.Uint32(sb[40:]), inodeSize: 128, descSize: 32, inodes: le.Uint32(sb[0:])}
	blocksPerGroup := le.Uint32(sb[32:])
	firstData := le.Uint32(sb[20:])
	blocks := uint64(le.Uint32(sb[4:]))
	incompat := le.Uint32(sb[96:])
	if le.Uint32(sb[76:]) >= 1 {
		fs.inodeSize = int64(le.Uint16(sb[88:]))
	}
	if incompat&incompat64Bit != 0 {
		blocks |= uint64(le.Uint32(sb[0x150:])) << 32
		fs.descSize = int64(le.Uint16(sb[254:]))
	}
	switch {
	case fs.inodesPerGroup == 0 || blocksPerGroup == 0:
		return nil, fmt.Errorf("%w: zero inodes or blocks per group", ErrFormat)
	case fs.inodeSize < 128 || fs.inodeSize > fs.blockSize || fs.inodeSize&(fs.inodeSize-1) != 0:
		return nil, fmt.Errorf("%w: inode size %d", ErrFormat, fs.inodeSize)
	case fs.descSize < 32 || fs.descSize > 1024:
		return nil, fmt.Errorf("%w: group descriptor size %d", ErrFormat, fs.descSize)
	case blocks > uint64(size)/uint64(fs.blockSize)+1:
		return nil, fmt.Errorf("%w: %d blocks of %d bytes do not fit in %d bytes", ErrFormat, blocks, fs.blockSize, size)
	}
	fs.groups = uint32((blocks - uint64(firstData) + uint64(blocksPerGroup) - 1) / uint64(blocksPerGroup))
	fs.descStart = (int64(firstData) + 1) * fs.blockSize
	return fs, nil
}

func (fs *FS) read(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > fs.size || n > fs.size-off {
		return nil, fmt.Errorf("%w: read of %d bytes at %d outside the image", ErrFormat, n, off)
	}
	b := make([]byte, n)
	if _, err := fs.r.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return b, nil
}

type inode struct {
	num   uint32
	mode  uint16
	size  int64
	flags uint32
	block []byte // i_block, 60 bytes
}

func (fs *FS) inode(n uint32) (*inode, error) {
	if n == 0 || n > fs.inodes {
		return nil, fmt.Errorf("%w: inode %d out of range", ErrFormat, n)
	}
	g, idx := (n-1)/fs.inodesPerGroup, (n-1)%fs.inodesPerGroup
	if g >= fs.groups {
		return nil, fmt.Errorf("%w: inode %d in group %d of %d", ErrFormat, n, g, fs.groups)
	}
	d, err := fs.read(fs.descStart+int64(g)*fs.descSize, fs.descSize)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	table := uint64(le.Uint32(d[8:]))
	if fs.descSize >= 64 {
		table |= uint64(le.Uint32(d[0x28:])) << 32
	}
	if table > uint64(fs.size/fs.blockSize) {
		return nil, fmt.Errorf("%w: inode table of group %d at block %d", ErrFormat, g, table)
	}
	b, err := fs.read(int64(table)*fs.blockSize+int64(idx)*fs.inodeSize, 128)
	if err != nil {
		return nil, err
	}
	in := &inode{num: n, mode: le.Uint16(b[0:]), flags: le.Uint32(b[32:]), block: b[40:100]}
	in.size = int64(uint64(le.Uint32(b[4:])) | uint64(le.Uint32(b[108:]))<<32)
	if in.size < 0 {
		return nil, fmt.Errorf("%w: inode %d has a negative size", ErrFormat, n)
	}
	return in, nil
}

// data reads a file's first limit bytes (holes read as zeros).
func (fs *FS) data(in *inode, limit int64) ([]byte, error) {
	n := min(in.size, limit)
	if in.flags&flagInlineData != 0 {
		if in.size > 60 {
			return nil, fmt.Errorf("%w: inode %d: inline data beyond i_block is not supported", ErrFormat, in.num)
		}
		return append([]byte(nil), in.block[:n]...), nil
	}
	out := make([]byte, n)
	bs := fs.blockSize
	blocks := uint64((n + bs - 1) / bs)
	put := func(fileBlock, diskBlock uint64, count uint64, zero bool) error {
		// Holes and uninitialized extents read as the zeros out holds,
		// and nothing past the bytes wanted is visited: the loop below
		// reads a block every time round.
		if zero || fileBlock >= blocks {
			return nil
		}
		count = min(count, blocks-fileBlock)
		for i := uint64(0); i < count; i++ {
			off := int64(fileBlock+i) * bs
			if diskBlock+i > uint64(fs.size/bs) {
				return fmt.Errorf("%w: inode %d: block %d outside the image", ErrFormat, in.num, diskBlock+i)
			}
			b, err := fs.read(int64(diskBlock+i)*bs, min(bs, n-off))
			if err != nil {
				return err
			}
			copy(out[off:], b)
		}
		return nil
	}
	if in.flags&flagExtents != 0 {
		if err := fs.extents(in, in.block, 0, put); err != nil {
			return nil, err
		}
		return out, nil
	}
	if err := fs.blockMap(in, put, n); err != nil {
		return nil, err
	}
	return out, nil
}

func (fs *FS) extents(in *inode, node []byte, depth int, put func(fb, db, n uint64, zero bool) error) error {
	le := binary.LittleEndian
	if len(node) < 12 || le.Uint16(node[0:]) != extentHeaderMagic {
		return fmt.Errorf("%w: inode %d: bad extent header", ErrFormat, in.num)
	}
	entries, level := int(le.Uint16(node[2:])), int(le.Uint16(node[6:]))
	if 12+entries*12 > len(node) || depth > maxExtentDepth || level > maxExtentDepth {
		return fmt.Errorf("%w: inode %d: extent node out of bounds", ErrFormat, in.num)
	}
	for i := 0; i < entries; i++ {
		e := node[12+i*12 : 24+i*12]
		if level == 0 {
			length := uint64(le.Uint16(e[4:]))
			uninit := length > extentUninitialize
			if uninit {
				length -= extentUninitialize
			}
			start := uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))
			if err := put(uint64(le.Uint32(e[0:])), start, length, uninit); err != nil {
				return err
			}
			continue
		}
		if fs.nodeBudget > 0 {
			if fs.nodeBudget--; fs.nodeBudget == 0 {
				return fmt.Errorf("%w (extent tree nodes)", ErrLimit)
			}
		}
		leaf := uint64(le.Uint32(e[4:])) | uint64(le.Uint16(e[8:]))<<32
		if leaf > uint64(fs.size/fs.blockSize) {
			return fmt.Errorf("%w: inode %d: extent index block %d outside the image", ErrFormat, in.num, leaf)
		}
		child, err := fs.read(int64(leaf)*fs.blockSize, fs.blockSize)
		if err != nil {
			return err
		}
		if err := fs.extents(in, child, depth+1, put); err != nil {
			return err
		}
	}
	return nil
}

// blockMap walks ext2/3's direct and indirect blocks.
func (fs *FS) blockMap(in *inode, put func(fb, db, n uint64, zero bool) error, n int64) error {
	le := binary.LittleEndian
	per := uint64(fs.blockSize / 4)
	want := uint64((n + fs.blockSize - 1) / fs.blockSize)
	var walk func(block uint64, level int, first uint64) error
	walk = func(block uint64, level int, first uint64) error {
		if block == 0 || first >= want {
			return nil
		}
		if level == 0 {
			return put(first, block, 1, false)
		}
		if block > uint64(fs.size/fs.blockSize) {
			return fmt.Errorf("%w: inode %d: indirect block %d outside the image", ErrFormat, in.num, block)
		}
		b, err := fs.read(int64(block)*fs.blockSize, fs.blockSize)
		if err != nil {
			return err
		}
		span := uint64(1)
		for i := 1; i < level; i++ {
			span *= per
		}
		for i := uint64(0); i < per; i++ {
			if err := walk(uint64(le.Uint32(b[i*4:])), level-1, first+i*span); err != nil {
				return err
			}
		}
		return nil
	}
	for i := 0; i < 12; i++ {
		if err := walk(uint64(le.Uint32(in.block[i*4:])), 0, uint64(i)); err != nil {
			return err
		}
	}
	first := uint64(12)
	for level := 1; level <= 3; level++ {
		if err := walk(uint64(le.Uint32(in.block[(11+level)*4:])), level, first); err != nil {
			return err
		}
		span := uint64(1)
		for i := 0; i < level; i++ {
			span *= per
		}
		first += span
	}
	return nil
}

// lookup finds name in directory dir.
func (fs *FS) lookup(dir *inode, name string) (uint32, error) {
	var found uint32
	err := fs.entries(dir, func(n string, ino uint32) bool {
		if n == name {
			found = ino
		}
		return found == 0
	})
	if err == nil && found == 0 {
		err = ErrNotExist
	}
	return found, err
}

// entries calls fn for each entry of directory dir ("." and ".." too)
// until fn returns false.
func (fs *FS) entries(dir *inode, fn func(name string, ino uint32) bool) error {
	if dir.mode&modeTypeMask != modeDir {
		return fmt.Errorf("%w: not a directory", ErrNotExist)
	}
	if dir.size > maxDirSize {
		return fmt.Errorf("%w: directory inode %d is %d bytes", ErrFormat, dir.num, dir.size)
	}
	b, err := fs.data(dir, dir.size)
	if err != nil {
		return err
	}
	if dir.flags&flagInlineData != 0 && len(b) >= 4 {
		b = b[4:] // an inline directory starts with its parent's inode number
	}
	le := binary.LittleEndian
	for off := 0; off+8 <= len(b); {
		ino, recLen, nameLen := le.Uint32(b[off:]), int(le.Uint16(b[off+4:])), int(b[off+6])
		if recLen < 8 || off+recLen > len(b) || 8+nameLen > recLen {
			return fmt.Errorf("%w: directory inode %d: bad entry at byte %d", ErrFormat, dir.num, off)
		}
		if ino != 0 && !fn(string(b[off+8:off+8+nameLen]), ino) {
			return nil
		}
		off += recLen
	}
	return nil
}

// ReadDir lists the names in the directory at p (relative to the
// filesystem's root), without "." and "..", in on-disk order; at most
// limit of them.
func (fs *FS) ReadDir(p string, limit int) ([]string, error) {
	return fspath.ReadDir(fs.paths(), p, limit, func(dir *inode, fn func(string) bool) error {
		return fs.entries(dir, func(n string, _ uint32) bool { return fn(n) })
	})
}

// ReadFile reads the file at p (relative to the filesystem's root),
// following symlinks inside the filesystem; at most limit bytes, or an
// error if the file is larger.
func (fs *FS) ReadFile(p string, limit int64) ([]byte, error) {
	return fspath.ReadFile(fs.paths(), p, limit)
}

func (fs *FS) paths() fspath.FS[*inode] {
	return fspath.FS[*inode]{
		Root: func() (*inode, error) { return fs.inode(rootInode) },
		Lookup: func(dir *inode, name string) (*inode, error) {
			ino, err := fs.lookup(dir, name)
			if err != nil {
				return nil, err
			}
			return fs.inode(ino)
		},
		Mode: func(n *inode) uint32 { return uint32(n.mode) },
		Size: func(n *inode) int64 { return n.size },
		Read: func(n *inode, size int64) ([]byte, error) {
			// A short symlink keeps its target in i_block itself.
			if n.mode&modeTypeMask == modeSymlink && n.size < 60 && n.flags&(flagExtents|flagInlineData) == 0 {
				return append([]byte(nil), n.block[:n.size]...), nil
			}
			return fs.data(n, size)
		},
		NotExist: ErrNotExist,
	}
}

// Extent is a run of a file's data in the image, in bytes.
type Extent struct{ Offset, Length int64 }

const modeRegular = 0x8000

// ErrLimit is returned by Walk when the filesystem holds more entries and
// extents than the caller allowed.
var ErrLimit = errors.New("ext4: filesystem larger than the walk's limit")

// Walk calls fn for every path of a regular file under the root,
// directories in on-disk order; a hard link repeats an earlier inode
// number, with nil data. data lists the
// file's blocks in file order; holes, unwritten extents and blocks past the
// end of the file are left out, so a file with inline data has none. At
// most limit directory entries and extents are visited: a crafted image
// cannot make the walk run for ever, and a directory met twice (a loop) is
// an error.
func (fs *FS) Walk(limit int, fn func(path string, ino uint64, size int64, data []Extent) error) error {
	root, err := fs.inode(rootInode)
	if err != nil {
		return err
	}
	type dir struct {
		in   *inode
		path string
	}
	// Each extent tree node belongs to one file: a walk reads no more of
	// them than the image has blocks, whatever crafted pointers say.
	fs.nodeBudget = int(min(int64(limit), fs.size/fs.blockSize+1))
	defer func() { fs.nodeBudget = 0 }()
	stack := []dir{{root, ""}}
	seenDir := map[uint32]bool{rootInode: true}
	seenFile := map[uint32]bool{}
	budget := limit
	spend := func() error {
		if budget--; budget < 0 {
			return fmt.Errorf("%w (%d entries and extents)", ErrLimit, limit)
		}
		return nil
	}
	le := binary.LittleEndian
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if d.in.size > maxDirSize || d.in.size > fs.size {
			return fmt.Errorf("%w: directory inode %d is %d bytes", ErrFormat, d.in.num, d.in.size)
		}
		b, err := fs.data(d.in, d.in.size)
		if err != nil {
			return err
		}
		if d.in.flags&flagInlineData != 0 && len(b) >= 4 {
			b = b[4:]
		}
		var subdirs []dir
		for off := 0; off+8 <= len(b); {
			ino, recLen, nameLen := le.Uint32(b[off:]), int(le.Uint16(b[off+4:])), int(b[off+6])
			if recLen < 8 || off+recLen > len(b) || 8+nameLen > recLen {
				return fmt.Errorf("%w: directory inode %d: bad entry at byte %d", ErrFormat, d.in.num, off)
			}
			name := string(b[off+8 : off+8+nameLen])
			off += recLen
			if ino == 0 || name == "." || name == ".." {
				continue
			}
			if err := spend(); err != nil {
				return err
			}
			in, err := fs.inode(ino)
			if err != nil {
				return err
			}
			p := name
			if d.path != "" {
				p = d.path + "/" + name
			}
			switch in.mode & modeTypeMask {
			case modeDir:
				if seenDir[ino] {
					return fmt.Errorf("%w: directory inode %d is reached twice", ErrFormat, ino)
				}
				seenDir[ino] = true
				subdirs = append(subdirs, dir{in, p})
			case modeRegular:
				var ext []Extent
				if !seenFile[ino] { // else a hard link: its blocks are listed already
					seenFile[ino] = true
					if ext, err = fs.fileExtents(in, spend); err != nil {
						return err
					}
				}
				if err := fn(p, uint64(ino), in.size, ext); err != nil {
					return err
				}
			}
		}
		// Depth first, in directory order.
		for i := len(subdirs) - 1; i >= 0; i-- {
			stack = append(stack, subdirs[i])
		}
	}
	return nil
}

// fileExtents lists where a regular file's data lies, in file order.
func (fs *FS) fileExtents(in *inode, spend func() error) ([]Extent, error) {
	if in.flags&flagInlineData != 0 {
		return nil, nil
	}
	bs := fs.blockSize
	blocks := uint64(in.size) / uint64(bs) // in.size >= 0: no overflow
	if uint64(in.size)%uint64(bs) != 0 {
		blocks++
	}
	var out []Extent
	last := int64(-1) // the file block after the last one put
	put := func(fb, db, n uint64, zero bool) error {
		if err := spend(); err != nil {
			return err
		}
		if zero || fb >= blocks || n == 0 {
			return nil
		}
		if int64(fb) < last {
			return fmt.Errorf("%w: inode %d: extents out of order", ErrFormat, in.num)
		}
		n = min(n, blocks-fb)
		if db > uint64(fs.size/bs) || n > uint64(fs.size/bs)-db {
			return fmt.Errorf("%w: inode %d: block %d outside the image", ErrFormat, in.num, db)
		}
		last = int64(fb + n)
		off, length := int64(db)*bs, int64(n)*bs
		if k := len(out) - 1; k >= 0 && out[k].Offset+out[k].Length == off {
			out[k].Length += length
			return nil
		}
		out = append(out, Extent{off, length})
		return nil
	}
	if in.flags&flagExtents != 0 {
		return out, fs.extents(in, in.block, 0, put)
	}
	return out, fs.blockMap(in, put, in.size)
}

// BlockSize is the filesystem's block size in bytes.
func (fs *FS) BlockSize() int64 { return fs.blockSize }
