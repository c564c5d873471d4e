package fsmap

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

// tree writes a small USR tree with a hard link and a sparse file.
func tree(t testing.TB) string {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "bin"), 0o755)
	os.MkdirAll(filepath.Join(src, "lib/modules/6.1.0-57"), 0o755)
	os.WriteFile(filepath.Join(src, "bin/a"), bytes.Repeat([]byte("a"), 10000), 0o755)
	os.Link(filepath.Join(src, "bin/a"), filepath.Join(src, "bin/a-link"))
	os.WriteFile(filepath.Join(src, "lib/modules/6.1.0-57/m.ko"), bytes.Repeat([]byte("mod "), 5000), 0o644)
	os.WriteFile(filepath.Join(src, "lib/tiny"), []byte("x"), 0o644)
	f, _ := os.Create(filepath.Join(src, "lib/sparse"))
	f.WriteAt([]byte("head"), 0)
	f.WriteAt([]byte("tail"), 1<<20)
	f.Close()
	return src
}

// Every regular file is listed with its data blocks, which hold its
// content; a hard link is one file with two paths; a hole is no block.
func TestRead(t *testing.T) {
	src := tree(t)
	for _, kind := range []string{"ext2", "ext4", "btrfs"} {
		t.Run(kind, func(t *testing.T) {
			img := testutil.MakeFS(t, kind, src)
			m, err := Read(bytes.NewReader(img), int64(len(img)))
			if err != nil {
				t.Fatal(err)
			}
			byPath := map[string]*File{}
			for i := range m.Files {
				f := &m.Files[i]
				for _, p := range append([]string{f.Path}, f.Links...) {
					byPath[p] = f
				}
				for _, r := range f.Blocks {
					for b := r.Start; b < r.Start+r.Count; b++ {
						if m.Owner[b] != int32(i+1) {
							t.Fatalf("%s: block %d owned by %d", f.Path, b, m.Owner[b])
						}
					}
				}
			}
			a, link := byPath["bin/a"], byPath["bin/a-link"]
			if a == nil || a != link {
				t.Fatalf("bin/a %v and its hard link %v", a, link)
			}
			if got := content(img, a); !bytes.Equal(got[:10000], bytes.Repeat([]byte("a"), 10000)) {
				t.Fatal("bin/a's blocks do not hold its content")
			}
			if ko := byPath["lib/modules/6.1.0-57/m.ko"]; ko == nil || !bytes.Equal(content(img, ko)[:20000], bytes.Repeat([]byte("mod "), 5000)) {
				t.Fatal("m.ko missing or wrong")
			}
			sp := byPath["lib/sparse"]
			if sp == nil {
				t.Fatal("lib/sparse missing")
			}
			// mkfs.btrfs --rootdir (6.2) writes holes out as zeros.
			if kind != "btrfs" && sp.NumBlocks() > 2 {
				t.Fatalf("lib/sparse: %+v, want its two data blocks at most (the hole is none)", sp)
			}
		})
	}
}

func content(img []byte, f *File) []byte {
	var out []byte
	for _, r := range f.Blocks {
		out = append(out, img[r.Start*BlockSize:(r.Start+r.Count)*BlockSize]...)
	}
	return out
}

func TestUnsupported(t *testing.T) {
	img := make([]byte, 1<<20)
	if _, err := Read(bytes.NewReader(img), int64(len(img))); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("zeros: %v", err)
	}
	if _, err := Read(bytes.NewReader(img), 1000); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("odd size: %v", err)
	}
}

// Crafted images give an error or a map whose blocks are all in the image,
// never a crash or an endless walk.
func FuzzRead(f *testing.F) {
	if _, err := exec.LookPath("mke2fs"); err == nil {
		src := tree(f)
		img := filepath.Join(f.TempDir(), "fs.img")
		if exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-N", "16", "-d", src, img, "2M").Run() == nil {
			b, _ := os.ReadFile(img)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		size := int64(len(b)) / BlockSize * BlockSize
		m, err := Read(bytes.NewReader(b), size)
		if err != nil {
			return
		}
		for _, file := range m.Files {
			for _, r := range file.Blocks {
				if r.Start+r.Count > uint64(size/BlockSize) || r.Start+r.Count < r.Start {
					t.Fatalf("%s: run %v outside %d blocks", file.Path, r, size/BlockSize)
				}
			}
		}
	})
}
