package ext4

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/augen-project/augen/internal/budget"
)

// Finding 4: an extent tree of depth 5 whose index entries all point at
// the same node below makes a naive walk visit 84^4 leaves of a 1 KiB
// block filesystem (340^4 with 4 KiB blocks): days of work from a 256 KiB
// image. Every read is charged to a budget; the walk stops when it is
// spent, and the count of bytes read proves the bound.
func TestExtentFanOutStopsAtBudget(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "lib"), 0o755)
	os.WriteFile(filepath.Join(src, "lib", "os-release"), []byte("VERSION=1.2.3\n"), 0o644)
	f := mkfsSized(t, src, "256K", "-t", "ext4", "-b", "1024", "-N", "16", "-O", "^metadata_csum,^has_journal,^resize_inode")
	st, _ := f.Stat()
	img := make([]byte, st.Size())
	if _, err := f.ReadAt(img, 0); err != nil {
		t.Fatal(err)
	}
	fs, err := Open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	root, _ := fs.inode(rootInode)
	libIno, err := fs.lookup(root, "lib")
	if err != nil {
		t.Fatal(err)
	}
	lib, _ := fs.inode(libIno)
	ino, err := fs.lookup(lib, "os-release")
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	// The inode's i_block, found as fs.inode finds it.
	g, idx := (ino-1)/fs.inodesPerGroup, (ino-1)%fs.inodesPerGroup
	d := img[fs.descStart+int64(g)*fs.descSize:]
	iblock := img[int64(le.Uint32(d[8:]))*fs.blockSize+int64(idx)*fs.inodeSize+40:][:60]
	header := func(b []byte, entries, depth int) {
		le.PutUint16(b[0:], extentHeaderMagic)
		le.PutUint16(b[2:], uint16(entries))
		le.PutUint16(b[4:], uint16(entries))
		le.PutUint16(b[6:], uint16(depth))
	}
	const first = 240 // blocks 240..244 hold levels 4..0
	clear(iblock)
	header(iblock, 1, 5)
	le.PutUint32(iblock[12+4:], first)
	per := int(fs.blockSize-12) / 12
	for level := 4; level >= 0; level-- {
		node := img[int64(first+4-level)*fs.blockSize:][:fs.blockSize]
		header(node, per, level)
		for i := 0; i < per; i++ {
			e := node[12+12*i:]
			if level == 0 {
				le.PutUint32(e[0:], 1000) // past the file's end: no data read
				le.PutUint16(e[4:], 1)
				continue
			}
			le.PutUint32(e[4:], uint32(first+4-level+1))
		}
	}
	const max = 8 << 20
	r := budget.NewReaderAt(context.Background(), bytes.NewReader(img), max)
	fs, err = Open(r, int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = fs.ReadFile("lib/os-release", 1<<10)
	if !errors.Is(err, budget.ErrExceeded) {
		t.Fatalf("ReadFile = %v, want the budget exceeded", err)
	}
	if used := r.Used(); used > max+fs.blockSize {
		t.Fatalf("read %d bytes with a budget of %d", used, max)
	}
}
