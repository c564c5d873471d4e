package ext4

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

func mkfs(t testing.TB, src string, args ...string) *os.File {
	return mkfsSized(t, src, "8M", args...)
}

func mkfsSized(t testing.TB, src, size string, args ...string) *os.File {
	testutil.RequireTools(t, "mke2fs")
	img := filepath.Join(t.TempDir(), "fs.img")
	args = append(append([]string{"-q", "-F"}, args...), "-d", src, img, size)
	if out, err := exec.Command("mke2fs", args...).CombinedOutput(); err != nil {
		t.Fatalf("mke2fs %v: %v\n%s", args, err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestReadFile(t *testing.T) {
	src, files := testutil.FSTree(t)
	for _, variant := range [][]string{
		{"-t", "ext4"},
		{"-t", "ext4", "-b", "1024", "-O", "^64bit"},
		{"-t", "ext2", "-b", "1024"}, // block maps with double indirect blocks
		{"-t", "ext3", "-b", "4096"},
		{"-t", "ext4", "-O", "inline_data"},
	} {
		t.Run(fmt.Sprint(variant), func(t *testing.T) {
			f := mkfs(t, src, variant...)
			if !Probe(f) {
				t.Fatal("Probe: no")
			}
			st, _ := f.Stat()
			fs, err := Open(f, st.Size())
			if err != nil {
				t.Fatal(err)
			}
			inline := variant[len(variant)-1] == "inline_data"
			// inline data past i_block is refused, not misread
			testutil.CheckFSReads(t, fs.ReadFile, files, ErrNotExist, func(err error) bool { return inline && errors.Is(err, ErrFormat) })
			testutil.CheckReadDir(t, fs.ReadDir)
			if _, err := fs.ReadFile("lib", 100); err == nil {
				t.Error("a directory read as a file")
			}
		})
	}
}

// A truncated image is an error, never a panic or a short read.
func TestTruncated(t *testing.T) {
	src, _ := testutil.FSTree(t)
	f := mkfs(t, src, "-t", "ext4")
	b, _ := os.ReadFile(f.Name())
	for _, n := range []int{1500, 4096, 64 << 10, 1 << 20, len(b) / 2} {
		fs, err := Open(bytes.NewReader(b[:n]), int64(n))
		if err != nil {
			continue
		}
		if _, err := fs.ReadFile("bin/big", 16<<20); err == nil {
			t.Errorf("read bin/big from the first %d bytes", n)
		}
	}
}

func FuzzReadFile(f *testing.F) {
	if _, err := exec.LookPath("mke2fs"); err == nil {
		src := f.TempDir()
		os.MkdirAll(filepath.Join(src, "lib"), 0o755)
		os.WriteFile(filepath.Join(src, "lib/os-release"), []byte("VERSION=1.2.3\n"), 0o644)
		img := filepath.Join(f.TempDir(), "fs.img")
		if exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-b", "1024", "-N", "16", "-d", src, img, "256k").Run() == nil {
			b, _ := os.ReadFile(img)
			f.Add(b)
		}
	}
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
