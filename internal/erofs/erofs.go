// Package erofs reads files and directories from an EROFS image, the
// read-only filesystem systemd-repart puts in a sysext disk image. It
// reads what checking a sysext needs (its extension-release file, whether
// it carries usr/lib/os-release): uncompressed files (flat and inline
// layouts) and directories. A compressed file is refused with
// ErrCompressed, not guessed at. Every size and offset is checked against
// the image before it is read, and directories are bounded, so a crafted
// image gives an error, not a hang.
package erofs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/augen-project/augen/internal/fspath"
)

const (
	superOffset = 1024
	magic       = 0xE0F5E1E2

	// maxDirSize bounds a directory read whole: a real one holds far
	// fewer than the 64 Ki entries this allows.
	maxDirSize = 1 << 20

	modeTypeMask = 0xF000
	modeDir      = 0x4000
	modeSymlink  = 0xA000

	layoutFlatPlain  = 0
	layoutFlatInline = 2

	direntSize = 12

	knownIncompat = 0x7f
)

// ErrFormat wraps every error about a malformed image.
var ErrFormat = errors.New("erofs: malformed image")

// ErrNotExist means a path names no file.
var ErrNotExist = errors.New("erofs: no such file")

// ErrCompressed means a file is stored compressed, which this package
// does not read.
var ErrCompressed = errors.New("erofs: the file is compressed (augen reads uncompressed EROFS files only)")

// Probe reports whether r holds an EROFS superblock.
func Probe(r io.ReaderAt) bool {
	var b [4]byte
	_, err := r.ReadAt(b[:], superOffset)
	return err == nil && binary.LittleEndian.Uint32(b[:]) == magic
}

// FS is an opened image.
type FS struct {
	r         io.ReaderAt
	size      int64
	blockBits uint
	metaAddr  int64 // byte offset of the metadata area (inodes)
	rootNID   uint64
}

// Open reads the superblock of the image in r (size bytes).
func Open(r io.ReaderAt, size int64) (*FS, error) {
	sb := make([]byte, 128)
	if _, err := r.ReadAt(sb, superOffset); err != nil {
		return nil, fmt.Errorf("%w: superblock: %v", ErrFormat, err)
	}
	le := binary.LittleEndian
	if le.Uint32(sb) != magic {
		return nil, fmt.Errorf("%w: no EROFS magic", ErrFormat)
	}
	// Incompatible features this reader knows (zero padding, compression
	// configs and big pclusters, chunked files, the device table or
	// compression head2, tail packing, fragments or dedupe, xattr
	// prefixes): none changes how an uncompressed file or a directory is
	// laid out. A newer one (48-bit block addresses, 0x80) may, and is
	// refused rather than misread.
	if incompat := le.Uint32(sb[80:]); incompat&^knownIncompat != 0 {
		return nil, fmt.Errorf("%w: incompatible features %#x that augen does not know", ErrFormat, incompat&^knownIncompat)
	}
	bits := uint(sb[12])
	if bits < 9 || bits > 16 {
		return nil, fmt.Errorf("%w: block size 2^%d", ErrFormat, bits)
	}
	fs := &FS{r: r, size: size, blockBits: bits, rootNID: uint64(le.Uint16(sb[14:]))}
	fs.metaAddr = int64(le.Uint32(sb[40:])) << bits
	if fs.metaAddr >= size {
		return nil, fmt.Errorf("%w: metadata block %d is past the image's end", ErrFormat, le.Uint32(sb[40:]))
	}
	return fs, nil
}

// inode is what this package reads of an on-disk inode.
type inode struct {
	nid    uint64
	layout int
	mode   uint32
	size   int64
	blkz   int64 // raw_blkaddr, in bytes
	inline int64 // where inline data starts (after the inode and its xattrs)
}

func (fs *FS) read(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > fs.size || n > fs.size-off {
		return nil, fmt.Errorf("%w: %d bytes at %d are past the image's end (%d)", ErrFormat, n, off, fs.size)
	}
	b := make([]byte, n)
	if _, err := fs.r.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("%w: reading %d bytes at %d: %v", ErrFormat, n, off, err)
	}
	return b, nil
}

func (fs *FS) inode(nid uint64) (*inode, error) {
	if nid > uint64(fs.size)/32 {
		return nil, fmt.Errorf("%w: inode %d is past the image's end", ErrFormat, nid)
	}
	base := fs.metaAddr + int64(nid)*32
	b, err := fs.read(base, 32)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	format := le.Uint16(b)
	in := &inode{nid: nid, layout: int(format>>1) & 7, mode: uint32(le.Uint16(b[4:]))}
	isize := int64(32)
	if format&1 == 1 {
		if b, err = fs.read(base, 64); err != nil {
			return nil, err
		}
		isize = 64
		size := le.Uint64(b[8:])
		if size > uint64(fs.size)<<1 && size > 1<<40 {
			return nil, fmt.Errorf("%w: inode %d claims %d bytes", ErrFormat, nid, size)
		}
		in.size = int64(size)
	} else {
		in.size = int64(le.Uint32(b[8:]))
	}
	in.blkz = int64(le.Uint32(b[16:])) << fs.blockBits
	xattr := int64(0)
	if n := int64(le.Uint16(b[2:])); n > 0 {
		xattr = 12 + (n-1)*4
	}
	in.inline = base + isize + xattr
	return in, nil
}

// data reads the first n bytes of an uncompressed file.
func (fs *FS) data(in *inode, n int64) ([]byte, error) {
	if n > in.size {
		n = in.size
	}
	switch in.layout {
	case layoutFlatPlain:
		return fs.read(in.blkz, n)
	case layoutFlatInline:
		bs := int64(1) << fs.blockBits
		full := in.size / bs * bs
		head := min(n, full)
		var out []byte
		if head > 0 { // a file shorter than a block has no block address
			b, err := fs.read(in.blkz, head)
			if err != nil || n == head {
				return b, err
			}
			out = b
		}
		// The tail lies after the inode; it may not cross into the next
		// metadata block.
		tail := in.size - full
		if in.inline%bs+tail > bs {
			return nil, fmt.Errorf("%w: inode %d: inline data crosses a block", ErrFormat, in.nid)
		}
		t, err := fs.read(in.inline, n-head)
		if err != nil {
			return nil, err
		}
		return append(out, t...), nil
	case 1, 3:
		return nil, fmt.Errorf("inode %d: %w", in.nid, ErrCompressed)
	}
	return nil, fmt.Errorf("%w: inode %d: data layout %d is not one augen reads", ErrFormat, in.nid, in.layout)
}

// entries calls fn for each entry of directory dir, "." and ".." too,
// until fn returns false.
func (fs *FS) entries(dir *inode, fn func(name string, nid uint64) bool) error {
	if dir.mode&modeTypeMask != modeDir {
		return fmt.Errorf("%w: not a directory", ErrNotExist)
	}
	if dir.size > maxDirSize {
		return fmt.Errorf("%w: directory inode %d is %d bytes", ErrFormat, dir.nid, dir.size)
	}
	b, err := fs.data(dir, dir.size)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	bs := 1 << fs.blockBits
	for start := 0; start < len(b); start += bs {
		blk := b[start:min(start+bs, len(b))]
		if len(blk) < direntSize {
			return fmt.Errorf("%w: directory inode %d: short block", ErrFormat, dir.nid)
		}
		first := int(le.Uint16(blk[8:]))
		if first%direntSize != 0 || first < direntSize || first > len(blk) {
			return fmt.Errorf("%w: directory inode %d: bad name offset %d", ErrFormat, dir.nid, first)
		}
		n := first / direntSize
		for i := 0; i < n; i++ {
			d := blk[i*direntSize:]
			off, end := int(le.Uint16(d[8:])), len(blk)
			if i+1 < n {
				end = int(le.Uint16(d[direntSize+8:]))
			}
			if off < first || end < off || end > len(blk) {
				return fmt.Errorf("%w: directory inode %d: bad name at entry %d", ErrFormat, dir.nid, i)
			}
			name := blk[off:end]
			if i+1 == n {
				for j, c := range name {
					if c == 0 {
						name = name[:j]
						break
					}
				}
			}
			if len(name) == 0 {
				return fmt.Errorf("%w: directory inode %d: empty name at entry %d", ErrFormat, dir.nid, i)
			}
			if !fn(string(name), le.Uint64(d)) {
				return nil
			}
		}
	}
	return nil
}

func (fs *FS) lookup(dir *inode, name string) (*inode, error) {
	var nid uint64
	found := false
	if err := fs.entries(dir, func(n string, id uint64) bool {
		if n == name {
			nid, found = id, true
		}
		return !found
	}); err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrNotExist
	}
	return fs.inode(nid)
}

func (fs *FS) paths() fspath.FS[*inode] {
	return fspath.FS[*inode]{
		Root:     func() (*inode, error) { return fs.inode(fs.rootNID) },
		Lookup:   fs.lookup,
		Mode:     func(n *inode) uint32 { return n.mode },
		Size:     func(n *inode) int64 { return n.size },
		Read:     fs.data,
		NotExist: ErrNotExist,
	}
}

// ReadFile reads the file at p (relative to the image's root), following
// symlinks inside the image; at most limit bytes, or an error if the file
// is larger.
func (fs *FS) ReadFile(p string, limit int64) ([]byte, error) {
	return fspath.ReadFile(fs.paths(), p, limit)
}

// Exists reports whether p names anything in the image (a dangling
// symlink counts as nothing, as for systemd's chase).
func (fs *FS) Exists(p string) (bool, error) {
	_, err := fspath.Resolve(fs.paths(), p)
	if errors.Is(err, ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// ReadDir lists the names in the directory at p, without "." and "..",
// in on-disk order; at most limit of them.
func (fs *FS) ReadDir(p string, limit int) ([]string, error) {
	return fspath.ReadDir(fs.paths(), p, limit, func(dir *inode, fn func(string) bool) error {
		return fs.entries(dir, func(n string, _ uint64) bool { return fn(n) })
	})
}
