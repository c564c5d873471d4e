package erofs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

func open(t testing.TB, b []byte) *FS {
	t.Helper()
	if !Probe(bytes.NewReader(b)) {
		t.Fatal("not probed as EROFS")
	}
	fs, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestReadsMkfsErofs reads every file of the shared tree from images
// mkfs.erofs made, uncompressed and with lz4. A compressed file (lz4
// compresses the large repetitive one) is refused as compressed, never
// misread.
func TestReadsMkfsErofs(t *testing.T) {
	src, files := testutil.FSTree(t)
	for _, kind := range []string{"erofs", "erofs-lz4"} {
		t.Run(kind, func(t *testing.T) {
			fs := open(t, testutil.MakeFS(t, kind, src))
			compressed := 0
			testutil.CheckFSReads(t, fs.ReadFile, files, ErrNotExist, func(err error) bool {
				if errors.Is(err, ErrCompressed) && kind == "erofs-lz4" {
					compressed++
					return true
				}
				return false
			})
			if kind == "erofs-lz4" && compressed == 0 {
				t.Error("lz4 compressed no file: the compressed path is not tested")
			}
			testutil.CheckReadDir(t, fs.ReadDir)
			for p, want := range map[string]bool{"lib/os-release": true, "lib/nothing": false, "abs/os-release": true} {
				if got, err := fs.Exists(p); err != nil || got != want {
					t.Errorf("Exists(%s) = %v, %v", p, got, err)
				}
			}
		})
	}
}

// TestRefusesDamage truncates and corrupts a real image: every read ends
// in an error or the right bytes, never a panic.
func TestRefusesDamage(t *testing.T) {
	src, files := testutil.FSTree(t)
	img := testutil.MakeFS(t, "erofs", src)
	for _, n := range []int{0, 1000, 1100, 4096, 8192, len(img) / 2} {
		if fs, err := Open(bytes.NewReader(img[:n]), int64(n)); err == nil {
			if b, err := fs.ReadFile("lib/os-release", 1<<16); err == nil && !bytes.Equal(b, files["lib/os-release"]) {
				t.Fatalf("truncated to %d: misread", n)
			}
		}
	}
}

// TestRefusesUnknownFeatures: an incompatible feature this reader does
// not know (48-bit block addresses) is refused, not misread.
func TestRefusesUnknownFeatures(t *testing.T) {
	src, _ := testutil.FSTree(t)
	img := bytes.Clone(testutil.MakeFS(t, "erofs", src))
	img[superOffset+80] |= 0x80
	if _, err := Open(bytes.NewReader(img), int64(len(img))); !errors.Is(err, ErrFormat) {
		t.Fatalf("got %v", err)
	}
}

func FuzzReadFile(f *testing.F) {
	src, _ := testutil.FSTree(f)
	f.Add(testutil.MakeFS(f, "erofs", src)[:1<<16])
	f.Fuzz(func(t *testing.T, b []byte) {
		testutil.CheckBudgetedRead(t, b, 4<<20, 1<<20, func(r io.ReaderAt, size int64) (func(string, int64) ([]byte, error), error) {
			fs, err := Open(r, size)
			if err != nil {
				return nil, err
			}
			return fs.ReadFile, nil
		})
	})
}

// TestRefusesLyingInodes: a directory that claims more than the reader
// reads whole, and a root inode number past the image's end, are refused
// before anything is allocated for them.
func TestRefusesLyingInodes(t *testing.T) {
	src, _ := testutil.FSTree(t)
	img := testutil.MakeFS(t, "erofs", src)
	fs := open(t, img)
	root, err := fs.inode(fs.rootNID)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Clone(img)
	base := fs.metaAddr + int64(root.nid)*32
	if big[base]&1 == 1 { // an extended inode: a 64-bit size at byte 8
		binary.LittleEndian.PutUint64(big[base+8:], 1<<40)
	} else {
		binary.LittleEndian.PutUint32(big[base+8:], 1<<30)
	}
	if _, err := open(t, big).ReadFile("lib/os-release", 1<<16); !errors.Is(err, ErrFormat) {
		t.Fatalf("a huge root directory: %v", err)
	}
	past := bytes.Clone(img)
	binary.LittleEndian.PutUint16(past[superOffset+14:], 0xffff)
	if fs, err := Open(bytes.NewReader(past[:64<<10]), 64<<10); err == nil {
		if _, err := fs.ReadFile("lib/os-release", 1<<16); err == nil {
			t.Fatal("a root inode past the end was read")
		}
	}
}
