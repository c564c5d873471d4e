package btrfs

import (
	"bytes"
	"compress/zlib"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/augen-project/augen/internal/testutil"
)

// mkfs makes a btrfs image the way the corpus does (mixed block groups,
// single profiles), from a directory.
func mkfs(t testing.TB, src string) []byte {
	testutil.RequireTools(t, "mkfs.btrfs")
	img := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.btrfs", "-q", "-f", "--mixed", "-m", "single", "-d", "single", "--rootdir", src, img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.btrfs: %v\n%s", err, out)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadFile(t *testing.T) {
	src, files := testutil.FSTree(t)
	img := mkfs(t, src)
	r := bytes.NewReader(img)
	if !Probe(r) {
		t.Fatal("Probe: no")
	}
	fs, err := Open(r, int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	testutil.CheckFSReads(t, fs.ReadFile, files, ErrNotExist, nil)
	testutil.CheckReadDir(t, fs.ReadDir)
	// Truncations are errors, never panics.
	for _, n := range []int{70000, 1 << 20, len(img) / 2} {
		if fs, err := Open(bytes.NewReader(img[:n]), int64(n)); err == nil {
			if got, err := fs.ReadFile("bin/big", 16<<20); err == nil && !bytes.Equal(got, files["bin/big"]) {
				t.Errorf("misread bin/big from the first %d bytes", n)
			}
		}
	}
}

// Flatcar's /usr is zstd-compressed; btrfs pads each compressed extent
// to whole sectors with zeros after the frame.
func TestDecompress(t *testing.T) {
	data := bytes.Repeat([]byte("VERSION=1.2.3\n"), 500)
	enc, _ := zstd.NewWriter(nil)
	frame := enc.EncodeAll(data, nil)
	padded := append(frame, make([]byte, 4096-len(frame)%4096)...)
	for name, c := range map[string]struct {
		method uint8
		in     []byte
	}{
		"zstd":        {compressionZstd, frame},
		"zstd padded": {compressionZstd, padded},
		"zlib":        {compressionZlib, zlibOf(data)},
		"none":        {compressionNone, data},
	} {
		got, err := decompress(c.method, c.in, uint64(len(data)))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %d bytes, %v", name, len(got), err)
		}
	}
	if _, err := decompress(2, frame, 10); !errors.Is(err, ErrFormat) {
		t.Errorf("lzo: %v", err)
	}
	if _, err := decompress(compressionZstd, frame[:len(frame)/2], uint64(len(data))); err == nil {
		t.Error("half a zstd frame decoded")
	}
	if _, err := decompress(compressionZstd, frame, maxCompressed+1); err == nil {
		t.Error("oversized extent accepted")
	}
}

func zlibOf(b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func FuzzReadFile(f *testing.F) {
	f.Add(synthetic([]byte("VERSION=1.2.3\n"), false))
	f.Add(synthetic([]byte("VERSION=1.2.3\n"), true))
	f.Fuzz(func(t *testing.T, b []byte) {
		// With the budget verification uses: every walk stays within it.
		testutil.CheckBudgetedRead(t, b, 4<<20, maxReadSize, func(r io.ReaderAt, size int64) (func(string, int64) ([]byte, error), error) {
			fs, err := Open(r, size)
			if err != nil {
				return nil, err
			}
			return fs.ReadFile, nil
		})
	})
}

// Walk over crafted trees ends with an error or with extents inside the
// image, within its node budget.
func FuzzWalk(f *testing.F) {
	f.Add(synthetic([]byte("VERSION=1.2.3\n"), false))
	f.Add(synthetic([]byte("VERSION=1.2.3\n"), true))
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		fs.Walk(1<<16, func(p string, ino uint64, size int64, data []Extent) error {
			for _, e := range data {
				if e.Offset < 0 || e.Length < 0 || e.Offset+e.Length > int64(len(b)) {
					t.Fatalf("%s: extent %+v outside %d bytes", p, e, len(b))
				}
			}
			return nil
		})
	})
}
