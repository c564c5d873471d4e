// Package fat reads files from FAT12, FAT16 and FAT32 filesystems (the
// EFI system partition holding Flatcar's kernels), with long file names.
// It is strict and bounded: boot sector fields are checked, the FAT is
// bounded before it is read, and cluster chains are checked for loops,
// out-of-range clusters and lengths that disagree with the file size.
package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// ErrInvalid wraps every error about a malformed filesystem.
var ErrInvalid = errors.New("fat: invalid filesystem")

// ErrNotFound means the path does not exist.
var ErrNotFound = errors.New("fat: file not found")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// MaxFATBytes bounds the allocation table read into memory (FAT32 on a
// 1 GiB ESP with 4 KiB clusters takes 1 MiB).
const MaxFATBytes = 64 << 20

// FS is an opened filesystem.
type FS struct {
	r           io.ReaderAt
	bits        int // 12, 16 or 32
	clusterSize int64
	dataStart   int64
	clusters    uint32 // data clusters: numbered 2..clusters+1
	fat         []byte
	rootStart   int64 // FAT12/16 fixed root directory
	rootEntries int
	rootCluster uint32 // FAT32
}

// Open reads the boot sector and the first FAT of a filesystem of size
// bytes.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	bs := make([]byte, 512)
	if _, err := r.ReadAt(bs, 0); err != nil {
		return nil, invalidf("reading the boot sector: %v", err)
	}
	if bs[510] != 0x55 || bs[511] != 0xAA {
		return nil, invalidf("no boot sector signature")
	}
	bps := int64(binary.LittleEndian.Uint16(bs[11:]))
	spc := int64(bs[13])
	reserved := int64(binary.LittleEndian.Uint16(bs[14:]))
	nFATs := int64(bs[16])
	rootEntries := int64(binary.LittleEndian.Uint16(bs[17:]))
	total := int64(binary.LittleEndian.Uint16(bs[19:]))
	fatSize := int64(binary.LittleEndian.Uint16(bs[22:]))
	if total == 0 {
		total = int64(binary.LittleEndian.Uint32(bs[32:]))
	}
	if fatSize == 0 {
		fatSize = int64(binary.LittleEndian.Uint32(bs[36:]))
	}
	switch bps {
	case 512, 1024, 2048, 4096:
	default:
		return nil, invalidf("%d bytes per sector", bps)
	}
	if spc == 0 || spc&(spc-1) != 0 || spc*bps > 1<<16 {
		return nil, invalidf("%d sectors per cluster", spc)
	}
	if reserved == 0 || nFATs == 0 || nFATs > 4 || fatSize == 0 || fatSize*bps > MaxFATBytes {
		return nil, invalidf("reserved %d, %d FATs of %d sectors", reserved, nFATs, fatSize)
	}
	if total*bps > size {
		return nil, invalidf("%d sectors do not fit the %d-byte partition", total, size)
	}
	rootSectors := (rootEntries*32 + bps - 1) / bps
	dataSector := reserved + nFATs*fatSize + rootSectors
	if dataSector >= total {
		return nil, invalidf("no data area")
	}
	fs := &FS{r: r, clusterSize: spc * bps, dataStart: dataSector * bps, clusters: uint32((total - dataSector) / spc)}
	switch {
	case fs.clusters < 4085:
		fs.bits = 12
	case fs.clusters < 65525:
		fs.bits = 16
	default:
		fs.bits = 32
	}
	// Entries 0..clusters+1, rounded up: a FAT12 entry may end half-way
	// into a byte, which still has to be there.
	if need := ((int64(fs.clusters)+2)*int64(fs.bits) + 7) / 8; need > fatSize*bps {
		return nil, invalidf("the FAT (%d bytes) is too small for %d clusters", fatSize*bps, fs.clusters)
	}
	fs.fat = make([]byte, fatSize*bps)
	if _, err := r.ReadAt(fs.fat, reserved*bps); err != nil {
		return nil, invalidf("reading the FAT: %v", err)
	}
	if fs.bits == 32 {
		fs.rootCluster = binary.LittleEndian.Uint32(bs[44:]) & 0x0FFFFFFF
		if !fs.valid(fs.rootCluster) {
			return nil, invalidf("root directory cluster %d", fs.rootCluster)
		}
	} else {
		fs.rootStart = (reserved + nFATs*fatSize) * bps
		fs.rootEntries = int(rootEntries)
	}
	return fs, nil
}

func (fs *FS) valid(c uint32) bool { return c >= 2 && c < fs.clusters+2 }

// next returns the FAT entry of cluster c (a value no chain may follow if
// the table does not hold it, which Open's size check rules out).
func (fs *FS) next(c uint32) uint32 {
	width := uint64(2) // bytes read for one entry
	if fs.bits == 32 {
		width = 4
	}
	if end := uint64(c)*uint64(fs.bits)/8 + width; end > uint64(len(fs.fat)) {
		return 0x0FFFFFF7 // outside the table: refused by valid()
	}
	switch fs.bits {
	case 12:
		v := binary.LittleEndian.Uint16(fs.fat[c+c/2:])
		if c&1 == 1 {
			return uint32(v >> 4)
		}
		return uint32(v & 0xFFF)
	case 16:
		return uint32(binary.LittleEndian.Uint16(fs.fat[2*c:]))
	}
	return binary.LittleEndian.Uint32(fs.fat[4*c:]) & 0x0FFFFFFF
}

func (fs *FS) isEnd(v uint32) bool {
	switch fs.bits {
	case 12:
		return v >= 0xFF8
	case 16:
		return v >= 0xFFF8
	}
	return v >= 0x0FFFFFF8
}

// chain returns the clusters of a chain, at most limit of them.
func (fs *FS) chain(first uint32, limit int64) ([]uint32, error) {
	var out []uint32
	seen := map[uint32]bool{}
	for c := first; ; {
		if !fs.valid(c) {
			return nil, invalidf("cluster chain from %d reaches cluster %d, outside 2..%d", first, c, fs.clusters+1)
		}
		if seen[c] {
			return nil, invalidf("cluster chain from %d loops at %d", first, c)
		}
		seen[c] = true
		out = append(out, c)
		if int64(len(out)) > limit {
			return nil, invalidf("cluster chain from %d is longer than %d clusters", first, limit)
		}
		n := fs.next(c)
		if fs.isEnd(n) {
			return out, nil
		}
		c = n
	}
}

func (fs *FS) readClusters(cl []uint32, size int64) ([]byte, error) {
	out := make([]byte, size)
	for i, c := range cl {
		off := int64(i) * fs.clusterSize
		if off >= size {
			break
		}
		n := min(fs.clusterSize, size-off)
		if _, err := fs.r.ReadAt(out[off:off+n], fs.dataStart+int64(c-2)*fs.clusterSize); err != nil {
			return nil, invalidf("reading cluster %d: %v", c, err)
		}
	}
	return out, nil
}

type dirent struct {
	name    string
	dir     bool
	cluster uint32
	size    int64
}

// maxDirBytes bounds one directory.
const maxDirBytes = 4 << 20

func (fs *FS) readDir(cluster uint32, root bool) ([]dirent, error) {
	var raw []byte
	var err error
	if root && fs.bits != 32 {
		raw = make([]byte, fs.rootEntries*32)
		if _, err := fs.r.ReadAt(raw, fs.rootStart); err != nil {
			return nil, invalidf("reading the root directory: %v", err)
		}
	} else {
		cl, err2 := fs.chain(cluster, maxDirBytes/fs.clusterSize)
		if err2 != nil {
			return nil, err2
		}
		if raw, err = fs.readClusters(cl, int64(len(cl))*fs.clusterSize); err != nil {
			return nil, err
		}
	}
	var out []dirent
	var lfn []uint16
	for off := 0; off+32 <= len(raw); off += 32 {
		e := raw[off : off+32]
		if e[0] == 0 {
			break
		}
		if e[0] == 0xE5 {
			lfn = nil
			continue
		}
		attr := e[11]
		if attr == 0x0F { // long name piece: 13 UTF-16 units, last piece first
			var part []uint16
			for _, span := range [][2]int{{1, 11}, {14, 26}, {28, 32}} {
				for i := span[0]; i < span[1]; i += 2 {
					part = append(part, binary.LittleEndian.Uint16(e[i:]))
				}
			}
			if e[0]&0x40 != 0 {
				lfn = nil
			}
			lfn = append(part, lfn...)
			continue
		}
		if attr&0x08 != 0 { // volume label
			lfn = nil
			continue
		}
		name := shortName(e[:11])
		if lfn != nil {
			n := 0
			for n < len(lfn) && lfn[n] != 0 && lfn[n] != 0xFFFF {
				n++
			}
			name = string(utf16.Decode(lfn[:n]))
			lfn = nil
		}
		cl := uint32(binary.LittleEndian.Uint16(e[26:]))
		if fs.bits == 32 {
			cl |= uint32(binary.LittleEndian.Uint16(e[20:])) << 16
		}
		out = append(out, dirent{name: name, dir: attr&0x10 != 0, cluster: cl, size: int64(binary.LittleEndian.Uint32(e[28:]))})
	}
	return out, nil
}

func shortName(b []byte) string {
	base := strings.TrimRight(string(b[:8]), " ")
	ext := strings.TrimRight(string(b[8:11]), " ")
	if ext != "" {
		return base + "." + ext
	}
	return base
}

// ReadFile returns the content of the file at path ("flatcar/vmlinuz-a";
// names compare case-insensitively, as FAT does), refusing files larger
// than max bytes.
func (fs *FS) ReadFile(path string, max int64) ([]byte, error) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	cluster, root := fs.rootCluster, true
	for i, part := range parts {
		ents, err := fs.readDir(cluster, root)
		if err != nil {
			return nil, err
		}
		var found *dirent
		for j := range ents {
			if strings.EqualFold(ents[j].name, part) {
				found = &ents[j]
				break
			}
		}
		if found == nil {
			return nil, fmt.Errorf("%w: %s (no %q in /%s)", ErrNotFound, path, part, strings.Join(parts[:i], "/"))
		}
		if i < len(parts)-1 {
			if !found.dir {
				return nil, fmt.Errorf("%w: %s (%s is not a directory)", ErrNotFound, path, part)
			}
			cluster, root = found.cluster, false
			continue
		}
		if found.dir {
			return nil, fmt.Errorf("%w: %s is a directory", ErrNotFound, path)
		}
		if found.size > max {
			return nil, fmt.Errorf("fat: %s is %d bytes, more than the %d allowed", path, found.size, max)
		}
		if found.size == 0 {
			return []byte{}, nil
		}
		need := (found.size + fs.clusterSize - 1) / fs.clusterSize
		cl, err := fs.chain(found.cluster, need)
		if err != nil {
			return nil, err
		}
		if int64(len(cl)) != need {
			return nil, invalidf("%s: %d bytes but %d clusters", path, found.size, len(cl))
		}
		return fs.readClusters(cl, found.size)
	}
	return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
}
