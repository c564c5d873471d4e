package btrfs

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// synthetic builds the smallest btrfs image that holds /lib/os-release:
// the superblock, a chunk tree leaf mapping logical addresses one to one,
// a root tree leaf naming the fs tree, and the fs tree leaf with two
// directories and the file as one inline extent (compressed with zstd when
// asked, as Flatcar's /usr stores small files). 80 KiB, so it also makes a
// fuzz seed the fuzzer can move through quickly.
func synthetic(content []byte, zstdCompressed bool) []byte {
	const node = 4096
	const chunkLeaf, rootLeaf, fsLeaf = 0x11000, 0x12000, 0x13000
	img := make([]byte, 0x14000)
	le := binary.LittleEndian
	putKey := func(b []byte, k key) {
		le.PutUint64(b, k.objectID)
		b[8] = k.typ
		le.PutUint64(b[9:], k.offset)
	}
	chunkItem := func(length uint64) []byte {
		c := make([]byte, 48+32)
		le.PutUint64(c[0:], length)
		le.PutUint64(c[8:], 2)      // owner: the extent tree
		le.PutUint64(c[16:], 65536) // stripe length
		le.PutUint64(c[24:], 1|2|4) // data, system, metadata (mixed)
		le.PutUint32(c[32:], 4096)  // io_align
		le.PutUint32(c[36:], 4096)  // io_width
		le.PutUint32(c[40:], 4096)  // sector size
		le.PutUint16(c[44:], 1)     // stripes
		le.PutUint64(c[48:], 1)     // devid
		le.PutUint64(c[56:], 0)     // physical offset
		return c
	}
	leaf := func(addr int, items []struct {
		k key
		d []byte
	}) {
		n := img[addr : addr+node]
		le.PutUint64(n[48:], uint64(addr))
		le.PutUint32(n[96:], uint32(len(items)))
		end := node - headerSize
		for i, it := range items {
			end -= len(it.d)
			h := n[headerSize+i*itemSize:]
			putKey(h, it.k)
			le.PutUint32(h[17:], uint32(end))
			le.PutUint32(h[21:], uint32(len(it.d)))
			copy(n[headerSize+end:], it.d)
		}
	}
	type item = struct {
		k key
		d []byte
	}
	sb := img[superOffset:]
	copy(sb[0x40:], superMagic)
	le.PutUint64(sb[0x50:], rootLeaf)
	le.PutUint64(sb[0x58:], chunkLeaf)
	le.PutUint64(sb[0x88:], 1)
	le.PutUint32(sb[0x90:], 4096)
	le.PutUint32(sb[0x94:], node)
	ci := chunkItem(uint64(len(img)))
	putKey(sb[0x32b:], key{chunkTreeObjID, typeChunkItem, 0})
	copy(sb[0x32b+17:], ci)
	le.PutUint32(sb[0xa0:], uint32(17+len(ci)))
	leaf(chunkLeaf, []item{{key{chunkTreeObjID, typeChunkItem, 0}, ci}})
	root := make([]byte, 439)
	le.PutUint64(root[176:], fsLeaf)
	leaf(rootLeaf, []item{{key{fsTreeObjectID, typeRootItem, 0}, root}})
	inodeItem := func(mode uint32, size int) []byte {
		b := make([]byte, 160)
		le.PutUint64(b[16:], uint64(size))
		le.PutUint32(b[52:], mode)
		return b
	}
	dirItem := func(child uint64, name string) []byte {
		b := make([]byte, 30+len(name))
		putKey(b, key{child, typeInodeItem, 0})
		le.PutUint16(b[27:], uint16(len(name)))
		b[29] = 1
		copy(b[30:], name)
		return b
	}
	data, comp := content, uint8(compressionNone)
	if zstdCompressed {
		enc, _ := zstd.NewWriter(nil)
		data, comp = enc.EncodeAll(content, nil), compressionZstd
	}
	ext := make([]byte, 21+len(data))
	le.PutUint64(ext[8:], uint64(len(content)))
	ext[16] = comp
	copy(ext[21:], data)
	leaf(fsLeaf, []item{
		{key{256, typeInodeItem, 0}, inodeItem(0o40755, 6)},
		{key{256, typeDirItem, 1}, dirItem(257, "lib")},
		{key{257, typeInodeItem, 0}, inodeItem(0o40755, 20)},
		{key{257, typeDirItem, 2}, dirItem(258, "os-release")},
		{key{258, typeInodeItem, 0}, inodeItem(0o100644, len(content))},
		{key{258, typeExtentData, 0}, ext},
	})
	return img
}

func TestSynthetic(t *testing.T) {
	content := []byte("ID=flatcar\nVERSION=4459.2.1\nVERSION_ID=4459.2.1\n")
	for _, z := range []bool{false, true} {
		img := synthetic(content, z)
		fs, err := Open(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := fs.ReadFile("lib/os-release", 1024)
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("zstd %v: %q, %v", z, got, err)
		}
	}
}
