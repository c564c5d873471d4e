// Package btrfs reads files from a single-device btrfs filesystem image,
// read-only and without mounting: enough to find a release's os-release
// in a rebuilt /usr partition (Flatcar's /usr is a zstd-compressed btrfs).
// It maps logical addresses through the chunk tree, walks the root and fs
// trees, follows inline and regular extents (zlib or zstd compressed, or
// not), and symlinks inside the filesystem. Every structure is
// bounds-checked before it is used; tree walks are bounded in depth.
package btrfs

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	"github.com/augen-project/augen/internal/fspath"
)

// ErrFormat is wrapped by every problem with the image.
var ErrFormat = errors.New("btrfs: bad filesystem")

// ErrNotExist is returned for a path that is not in the filesystem.
var ErrNotExist = errors.New("btrfs: no such file")

const (
	superOffset   = 0x10000
	superMagic    = "_BHRfS_M"
	headerSize    = 101
	itemSize      = 25
	keyPtrSize    = 33
	maxLevel      = 8
	maxChunks     = 4096 // a 2 GiB filesystem has a few dozen; every read scans them
	maxNodeSize   = 64 << 10
	maxExtent     = 128 << 20 // no btrfs extent is larger
	maxCompressed = 128 << 10 // nor a compressed one, uncompressed

	typeInodeItem  = 1
	typeDirItem    = 84
	typeExtentData = 108
	typeRootItem   = 132
	typeChunkItem  = 228

	fsTreeObjectID  = 5
	firstFreeObject = 256
	chunkTreeObjID  = 256
	modeTypeMask    = 0xF000
	modeDir         = 0x4000
	compressionNone = 0
	compressionZlib = 1
	compressionZstd = 3
	extentInline    = 0
	extentRegular   = 1
	extentPrealloc  = 2
)

// Probe reports whether r holds a btrfs superblock.
func Probe(r io.ReaderAt) bool {
	b := make([]byte, 8)
	_, err := r.ReadAt(b, superOffset+0x40)
	return err == nil && string(b) == superMagic
}

type key struct {
	objectID uint64
	typ      uint8
	offset   uint64
}

func less(a, b key) bool {
	if a.objectID != b.objectID {
		return a.objectID < b.objectID
	}
	if a.typ != b.typ {
		return a.typ < b.typ
	}
	return a.offset < b.offset
}

func readKey(b []byte) key {
	return key{binary.LittleEndian.Uint64(b), b[8], binary.LittleEndian.Uint64(b[9:])}
}

type chunk struct {
	logical, length, physical uint64
}

// FS is an opened filesystem.
type FS struct {
	r        io.ReaderAt
	size     int64
	nodeSize uint32
	chunks   []chunk
	fsRoot   uint64
	fsLevel  uint8
	// nodeBudget, when positive, is how many more nodes walks may read.
	nodeBudget int
}

// Open reads the superblock, the chunk tree and the root tree.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	sb := make([]byte, 4096)
	if _, err := r.ReadAt(sb, superOffset); err != nil {
		return nil, fmt.Errorf("%w: superblock: %v", ErrFormat, err)
	}
	if string(sb[0x40:0x48]) != superMagic {
		return nil, fmt.Errorf("%w: no btrfs superblock", ErrFormat)
	}
	le := binary.LittleEndian
	fs := &FS{r: r, size: size, nodeSize: le.Uint32(sb[0x94:])}
	if fs.nodeSize < 4096 || fs.nodeSize > maxNodeSize || fs.nodeSize&(fs.nodeSize-1) != 0 {
		return nil, fmt.Errorf("%w: node size %d", ErrFormat, fs.nodeSize)
	}
	if n := le.Uint64(sb[0x88:]); n != 1 {
		return nil, fmt.Errorf("%w: %d devices (only single-device filesystems are read)", ErrFormat, n)
	}
	// The system chunks in the superblock bootstrap the chunk tree.
	arr := sb[0x32b:]
	n := int(le.Uint32(sb[0xa0:]))
	if n > 2048 {
		return nil, fmt.Errorf("%w: sys_chunk_array of %d bytes", ErrFormat, n)
	}
	for off := 0; off < n; {
		if off+17+48 > n {
			return nil, fmt.Errorf("%w: truncated sys_chunk_array", ErrFormat)
		}
		k := readKey(arr[off:])
		c, used, err := parseChunk(k, arr[off+17:n])
		if err != nil {
			return nil, err
		}
		fs.chunks = append(fs.chunks, c)
		off += 17 + used
	}
	err := fs.walk(le.Uint64(sb[0x58:]), sb[0xc7], key{0, 0, 0}, key{^uint64(0), 0xff, ^uint64(0)}, 0, func(k key, data []byte) (bool, error) {
		if k.typ == typeChunkItem {
			c, _, err := parseChunk(k, data)
			if err != nil {
				return false, err
			}
			fs.chunks = append(fs.chunks, c)
			if len(fs.chunks) > maxChunks {
				return false, fmt.Errorf("%w: more than %d chunks", ErrFormat, maxChunks)
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("chunk tree: %w", err)
	}
	found := false
	err = fs.walk(le.Uint64(sb[0x50:]), sb[0xc6], key{fsTreeObjectID, typeRootItem, 0}, key{fsTreeObjectID, typeRootItem, ^uint64(0)}, 0, func(k key, data []byte) (bool, error) {
		if len(data) < 239 {
			return false, fmt.Errorf("%w: short root item", ErrFormat)
		}
		fs.fsRoot, fs.fsLevel, found = le.Uint64(data[176:]), data[238], true
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("root tree: %w", err)
	}
	if !found {
		return nil, fmt.Errorf("%w: no filesystem tree", ErrFormat)
	}
	return fs, nil
}

func parseChunk(k key, b []byte) (chunk, int, error) {
	le := binary.LittleEndian
	if len(b) < 48 {
		return chunk{}, 0, fmt.Errorf("%w: short chunk item", ErrFormat)
	}
	stripes := int(le.Uint16(b[44:]))
	used := 48 + stripes*32
	if stripes < 1 || len(b) < used {
		return chunk{}, 0, fmt.Errorf("%w: chunk with %d stripes", ErrFormat, stripes)
	}
	// Single and DUP profiles: stripe 0 holds a whole copy.
	return chunk{logical: k.offset, length: le.Uint64(b[0:]), physical: le.Uint64(b[48+8:])}, used, nil
}

// readLogical reads n bytes at a logical address.
func (fs *FS) readLogical(addr uint64, n int) ([]byte, error) {
	phys, err := fs.physical(addr, uint64(n))
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := fs.r.ReadAt(b, int64(phys)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return b, nil
}

// walk visits the items with keys in [lo, hi] in key order, in the tree
// whose root node is at addr; fn returns false to stop.
func (fs *FS) walk(addr uint64, level uint8, lo, hi key, depth int, fn func(key, []byte) (bool, error)) error {
	_, err := fs.walkNode(addr, level, lo, hi, depth, fn)
	return err
}

func (fs *FS) walkNode(addr uint64, level uint8, lo, hi key, depth int, fn func(key, []byte) (bool, error)) (bool, error) {
	if depth > maxLevel || level > maxLevel {
		return false, fmt.Errorf("%w: tree deeper than %d", ErrFormat, maxLevel)
	}
	if fs.nodeBudget > 0 {
		if fs.nodeBudget--; fs.nodeBudget == 0 {
			return false, fmt.Errorf("%w (tree nodes)", ErrLimit)
		}
	}
	node, err := fs.readLogical(addr, int(fs.nodeSize))
	if err != nil {
		return false, err
	}
	le := binary.LittleEndian
	if le.Uint64(node[48:]) != addr || node[100] != level {
		return false, fmt.Errorf("%w: node at %#x is not the node its parent names", ErrFormat, addr)
	}
	n := int(le.Uint32(node[96:]))
	if level == 0 {
		if headerSize+n*itemSize > len(node) {
			return false, fmt.Errorf("%w: leaf at %#x holds %d items", ErrFormat, addr, n)
		}
		for i := 0; i < n; i++ {
			it := node[headerSize+i*itemSize:]
			k := readKey(it)
			if less(k, lo) {
				continue
			}
			if less(hi, k) {
				return false, nil
			}
			off, size := int(le.Uint32(it[17:])), int(le.Uint32(it[21:]))
			if off+size > len(node)-headerSize || off < 0 || size < 0 {
				return false, fmt.Errorf("%w: item %d of leaf %#x out of bounds", ErrFormat, i, addr)
			}
			more, err := fn(k, node[headerSize+off:headerSize+off+size])
			if err != nil || !more {
				return false, err
			}
		}
		return true, nil
	}
	if headerSize+n*keyPtrSize > len(node) {
		return false, fmt.Errorf("%w: node at %#x holds %d pointers", ErrFormat, addr, n)
	}
	for i := 0; i < n; i++ {
		p := node[headerSize+i*keyPtrSize:]
		// Child i holds keys from its key up to the next child's key.
		if i+1 < n && less(readKey(node[headerSize+(i+1)*keyPtrSize:]), lo) {
			continue
		}
		if less(hi, readKey(p)) {
			return false, nil
		}
		more, err := fs.walkNode(le.Uint64(p[17:]), level-1, lo, hi, depth+1, fn)
		if err != nil || !more {
			return false, err
		}
	}
	return true, nil
}

type inode struct {
	num  uint64
	mode uint32
	size uint64
}

func (fs *FS) inode(num uint64) (*inode, error) {
	var in *inode
	err := fs.walk(fs.fsRoot, fs.fsLevel, key{num, typeInodeItem, 0}, key{num, typeInodeItem, 0}, 0, func(k key, d []byte) (bool, error) {
		if len(d) < 160 {
			return false, fmt.Errorf("%w: short inode item", ErrFormat)
		}
		in = &inode{num: num, size: binary.LittleEndian.Uint64(d[16:]), mode: binary.LittleEndian.Uint32(d[52:])}
		return false, nil
	})
	if err == nil && in == nil {
		err = fmt.Errorf("%w: inode %d has no inode item", ErrFormat, num)
	}
	return in, err
}

// lookup finds name in directory dir through its DIR_ITEMs (all of them,
// so hash collisions need no name hash here).
func (fs *FS) lookup(dir *inode, name string) (uint64, error) {
	var found uint64
	err := fs.entries(dir, func(n string, loc key) (bool, error) {
		if n != name {
			return true, nil
		}
		if loc.typ != typeInodeItem {
			return false, fmt.Errorf("%w: %s is a subvolume", ErrFormat, name)
		}
		found = loc.objectID
		return false, nil
	})
	if err == nil && found == 0 {
		err = ErrNotExist
	}
	return found, err
}

// entries calls fn with each name of directory dir (its DIR_ITEMs) and
// the key it points to, until fn returns false or an error.
func (fs *FS) entries(dir *inode, fn func(name string, loc key) (bool, error)) error {
	if dir.mode&modeTypeMask != modeDir {
		return fmt.Errorf("%w: not a directory", ErrNotExist)
	}
	le := binary.LittleEndian
	return fs.walk(fs.fsRoot, fs.fsLevel, key{dir.num, typeDirItem, 0}, key{dir.num, typeDirItem, ^uint64(0)}, 0, func(k key, d []byte) (bool, error) {
		for len(d) > 0 {
			if len(d) < 30 {
				return false, fmt.Errorf("%w: short dir item", ErrFormat)
			}
			loc := readKey(d)
			dataLen, nameLen := int(le.Uint16(d[25:])), int(le.Uint16(d[27:]))
			if 30+nameLen+dataLen > len(d) {
				return false, fmt.Errorf("%w: dir item out of bounds", ErrFormat)
			}
			if more, err := fn(string(d[30:30+nameLen]), loc); !more || err != nil {
				return false, err
			}
			d = d[30+nameLen+dataLen:]
		}
		return true, nil
	})
}

// ReadDir lists the names in the directory at p (relative to the
// filesystem's root) in key order; at most limit of them.
func (fs *FS) ReadDir(p string, limit int) ([]string, error) {
	return fspath.ReadDir(fs.paths(), p, limit, func(dir *inode, fn func(string) bool) error {
		return fs.entries(dir, func(n string, _ key) (bool, error) { return fn(n), nil })
	})
}

// data reads a file's first n bytes (holes read as zeros).
func (fs *FS) data(in *inode, n uint64) ([]byte, error) {
	out := make([]byte, n)
	le := binary.LittleEndian
	err := fs.walk(fs.fsRoot, fs.fsLevel, key{in.num, typeExtentData, 0}, key{in.num, typeExtentData, ^uint64(0)}, 0, func(k key, d []byte) (bool, error) {
		if k.offset >= n {
			return false, nil
		}
		if len(d) < 21 {
			return false, fmt.Errorf("%w: short extent item", ErrFormat)
		}
		ramBytes, compression, encryption, encoding, typ := le.Uint64(d[8:]), d[16], d[17], le.Uint16(d[18:]), d[20]
		if encryption != 0 || encoding != 0 {
			return false, fmt.Errorf("%w: inode %d: encrypted or encoded extent", ErrFormat, in.num)
		}
		var b []byte
		switch typ {
		case extentInline:
			var err error
			if b, err = decompress(compression, d[21:], ramBytes); err != nil {
				return false, fmt.Errorf("inode %d: %w", in.num, err)
			}
		case extentRegular, extentPrealloc:
			if len(d) < 53 {
				return false, fmt.Errorf("%w: short extent item", ErrFormat)
			}
			diskAddr, diskLen, off, num := le.Uint64(d[21:]), le.Uint64(d[29:]), le.Uint64(d[37:]), le.Uint64(d[45:])
			if num > maxExtent || diskLen > maxExtent || off > maxExtent {
				return false, fmt.Errorf("%w: inode %d: extent of %d bytes", ErrFormat, in.num, num)
			}
			if diskAddr == 0 || typ == extentPrealloc {
				return true, nil // a hole or preallocated space: zeros
			}
			var err error
			if compression == compressionNone {
				b, err = fs.readLogical(diskAddr+off, int(min(num, n-k.offset)))
			} else if b, err = fs.readLogical(diskAddr, int(diskLen)); err == nil {
				if b, err = decompress(compression, b, ramBytes); err == nil {
					if off > uint64(len(b)) {
						return false, fmt.Errorf("%w: inode %d: extent offset past its data", ErrFormat, in.num)
					}
					b = b[off:min(uint64(len(b)), off+num)]
				}
			}
			if err != nil {
				return false, fmt.Errorf("inode %d: %w", in.num, err)
			}
		default:
			return false, fmt.Errorf("%w: inode %d: extent type %d", ErrFormat, in.num, typ)
		}
		copy(out[k.offset:], b)
		return true, nil
	})
	return out, err
}

// decompress undoes an extent's compression; the result is exactly
// ramBytes long at most.
func decompress(method uint8, b []byte, ramBytes uint64) ([]byte, error) {
	if method != compressionNone && ramBytes > maxCompressed {
		return nil, fmt.Errorf("%w: compressed extent of %d bytes", ErrFormat, ramBytes)
	}
	var r io.Reader
	switch method {
	case compressionNone:
		return b, nil
	case compressionZlib:
		zr, err := zlib.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%w: zlib: %v", ErrFormat, err)
		}
		r = zr
	case compressionZstd:
		// btrfs pads the frame with zeros to a whole sector; the frame
		// header says how much it holds, so decode that one frame only.
		var h zstd.Header
		if err := h.Decode(b); err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrFormat, err)
		}
		out, err := zstdDecoder.DecodeAll(b[:frameLen(b)], make([]byte, 0, ramBytes))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrFormat, err)
		}
		return out[:min(uint64(len(out)), ramBytes)], nil
	default:
		return nil, fmt.Errorf("%w: compression method %d (lzo) is not supported", ErrFormat, method)
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(ramBytes)))
	if err != nil {
		return nil, fmt.Errorf("%w: decompressing: %v", ErrFormat, err)
	}
	return out, nil
}

// ReadFile reads the file at p (relative to the filesystem's root),
// following symlinks inside the filesystem; at most limit bytes, or an
// error if the file is larger.
func (fs *FS) ReadFile(p string, limit int64) ([]byte, error) {
	return fspath.ReadFile(fs.paths(), p, limit)
}

func (fs *FS) paths() fspath.FS[*inode] {
	return fspath.FS[*inode]{
		Root: func() (*inode, error) { return fs.inode(firstFreeObject) },
		Lookup: func(dir *inode, name string) (*inode, error) {
			num, err := fs.lookup(dir, name)
			if err != nil {
				return nil, err
			}
			return fs.inode(num)
		},
		Mode:     func(n *inode) uint32 { return n.mode },
		Size:     func(n *inode) int64 { return int64(min(n.size, 1<<62)) },
		Read:     func(n *inode, size int64) ([]byte, error) { return fs.data(n, uint64(size)) },
		NotExist: ErrNotExist,
	}
}

var zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(2*maxCompressed))

// frameLen is the length of the zstd frame at the start of b (all of b if
// it cannot tell; the decoder then reports what is wrong).
func frameLen(b []byte) int {
	if len(b) < 6 {
		return len(b)
	}
	fhd := b[4]
	single := fhd>>5&1 == 1
	pos := 5
	if !single {
		pos++ // window descriptor
	}
	pos += [4]int{0, 1, 2, 4}[fhd&3]
	fcs := [4]int{0, 2, 4, 8}[fhd>>6]
	if fhd>>6 == 0 && single {
		fcs = 1
	}
	pos += fcs
	for pos+3 <= len(b) {
		bh := int(b[pos]) | int(b[pos+1])<<8 | int(b[pos+2])<<16
		last, typ, size := bh&1 == 1, bh>>1&3, bh>>3
		pos += 3
		switch typ {
		case 1: // RLE: one byte repeated
			pos++
		case 3:
			return len(b)
		default:
			pos += size
		}
		if last {
			if fhd>>2&1 == 1 {
				pos += 4 // content checksum
			}
			return min(pos, len(b))
		}
	}
	return len(b)
}

const (
	typeInodeRef = 12
	modeRegular  = 0x8000
	maxPathDepth = 4096
	maxLinks     = 64 // names kept per inode beyond its first
)

// Extent is a run of a file's data in the image, in bytes. A compressed
// extent is its compressed bytes, as the image holds them.
type Extent struct {
	Offset, Length int64
	Compressed     bool
}

// ErrLimit is returned by Walk when the filesystem holds more items than
// the caller allowed.
var ErrLimit = errors.New("btrfs: filesystem larger than the walk's limit")

// Walk calls fn for every path of a regular file of the filesystem tree,
// in inode order; a hard link repeats the inode number, with nil data (a
// directory's path is its first name). data lists its extents in file order; holes,
// preallocated space and inline data are left out. At most limit tree
// items and nodes are visited, so a crafted image cannot make the walk run
// for ever.
func (fs *FS) Walk(limit int, fn func(path string, ino uint64, size int64, data []Extent) error) error {
	type ref struct {
		parent uint64
		name   string
	}
	type ino struct {
		mode   uint32
		size   uint64
		parent uint64
		name   string
		more   []ref // further names (hard links)
		data   []Extent
	}
	inodes := map[uint64]*ino{}
	get := func(n uint64) *ino {
		in := inodes[n]
		if in == nil {
			in = &ino{}
			inodes[n] = in
		}
		return in
	}
	var order []uint64
	// A walk of the whole tree reads each node once: no more nodes than
	// the image holds, whatever a crafted tree's pointers say.
	fs.nodeBudget = int(min(int64(limit), fs.size/int64(fs.nodeSize)+1))
	defer func() { fs.nodeBudget = 0 }()
	le := binary.LittleEndian
	budget := limit
	err := fs.walk(fs.fsRoot, fs.fsLevel, key{0, 0, 0}, key{^uint64(0), 0xff, ^uint64(0)}, 0, func(k key, d []byte) (bool, error) {
		if budget--; budget < 0 {
			return false, fmt.Errorf("%w (%d items)", ErrLimit, limit)
		}
		switch k.typ {
		case typeInodeItem:
			if len(d) < 160 {
				return false, fmt.Errorf("%w: short inode item", ErrFormat)
			}
			in := get(k.objectID)
			in.size, in.mode = le.Uint64(d[16:]), le.Uint32(d[52:])
			order = append(order, k.objectID)
		case typeInodeRef:
			if len(d) < 10 {
				return false, fmt.Errorf("%w: short inode ref", ErrFormat)
			}
			// One item holds every name the inode has in directory k.offset.
			for len(d) > 0 {
				if len(d) < 10 {
					return false, fmt.Errorf("%w: short inode ref", ErrFormat)
				}
				nameLen := int(le.Uint16(d[8:]))
				if 10+nameLen > len(d) {
					return false, fmt.Errorf("%w: inode ref out of bounds", ErrFormat)
				}
				in, name := get(k.objectID), string(d[10:10+nameLen])
				if in.name == "" {
					in.parent, in.name = k.offset, name
				} else if len(in.more) < maxLinks {
					in.more = append(in.more, ref{k.offset, name})
				}
				d = d[10+nameLen:]
			}
		case typeExtentData:
			if len(d) < 53 || d[20] != extentRegular {
				return true, nil // inline, preallocated or short: not data blocks
			}
			diskAddr, diskLen, off, num := le.Uint64(d[21:]), le.Uint64(d[29:]), le.Uint64(d[37:]), le.Uint64(d[45:])
			if diskAddr == 0 || num > maxExtent || diskLen > maxExtent || off > maxExtent {
				return true, nil
			}
			e := Extent{Compressed: d[16] != compressionNone}
			addr, n := diskAddr+off, num
			if e.Compressed {
				addr, n = diskAddr, diskLen
			}
			phys, err := fs.physical(addr, n)
			if err != nil {
				return false, err
			}
			e.Offset, e.Length = int64(phys), int64(n)
			in := get(k.objectID)
			in.data = append(in.data, e)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, n := range order {
		in := inodes[n]
		if in.mode&modeTypeMask != modeRegular || in.name == "" {
			continue
		}
		data := in.data
		for _, r := range append([]ref{{in.parent, in.name}}, in.more...) {
			p, depth := r.name, 0
			for at := r.parent; at != firstFreeObject; depth++ {
				up := inodes[at]
				if up == nil || up.name == "" || depth > maxPathDepth {
					p = "" // not reachable from the root: no path
					break
				}
				p, at = up.name+"/"+p, up.parent
			}
			if p == "" {
				continue
			}
			if err := fn(p, n, int64(min(in.size, 1<<62)), data); err != nil {
				return err
			}
			data = nil
		}
	}
	return nil
}

// physical maps n bytes at a logical address to the image offset they are
// at, if they lie in one chunk inside the image.
func (fs *FS) physical(addr, n uint64) (uint64, error) {
	for _, c := range fs.chunks {
		if addr >= c.logical && addr-c.logical < c.length {
			if n > c.length-(addr-c.logical) {
				return 0, fmt.Errorf("%w: %d bytes at %#x cross a chunk", ErrFormat, n, addr)
			}
			phys := c.physical + (addr - c.logical)
			if phys > uint64(fs.size) || n > uint64(fs.size)-phys {
				return 0, fmt.Errorf("%w: %#x maps outside the image", ErrFormat, addr)
			}
			return phys, nil
		}
	}
	return 0, fmt.Errorf("%w: logical address %#x is in no chunk", ErrFormat, addr)
}
