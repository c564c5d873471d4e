package generate_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/generate"
)

// release writes a USR tree: many small "binaries", a kernel module under
// a versioned directory, a sparse file, and (in the new version) edits,
// growth, a new file and a removal, the shape of a Flatcar release.
func release(t *testing.T, dir string, new bool) {
	t.Helper()
	put := func(p string, b []byte) {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := func(seed uint64, n int) []byte {
		b := make([]byte, n)
		rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7}).Read(b)
		return b
	}
	patch := func(b []byte) []byte {
		c := bytes.Clone(b)
		for i := 500; i < len(c); i += 9000 {
			c[i] ^= 0xff
		}
		return c
	}
	for i := range 60 {
		b := bin(uint64(i), 3000+i*997)
		if new && i%3 == 0 {
			b = patch(b)
		}
		if new && i == 7 {
			b = append(b, bin(999, 40000)...) // grows
		}
		if new && i == 11 {
			continue // removed
		}
		put(filepath.Join("bin", "tool"+string(rune('a'+i%26))+strings.Repeat("x", i/26)), b)
	}
	modDir, ko := "lib/modules/6.1.0-56-flatcar", bin(1000, 150000)
	if new {
		modDir, ko = "lib/modules/6.1.0-57-flatcar", patch(ko)
	}
	put(modDir+"/kernel/fs/foo.ko", ko)
	// A sparse file, then a file that changes right after it.
	sparse := filepath.Join(dir, "share/sparse.db")
	put("share/sparse.db", bin(2000, 8192))
	f, err := os.OpenFile(sparse, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(bin(2001, 8192), 1<<20)
	f.Close()
	next := bin(2002, 50000)
	if new {
		next = patch(next)
		put("bin/brand-new", bin(3000, 20000))
	}
	put("share/sparse.next", next)
}

// Deltas between two releases on ext2, ext4 and btrfs (as mkfs makes
// them from a directory): they apply exactly, the independent checker
// agrees, each changed file is diffed (the module across its renamed
// version directory), and the data is a small part of what changed.
func TestFileDeltaFilesystems(t *testing.T) {
	for _, fsType := range []string{"ext2", "ext4", "btrfs"} {
		t.Run(fsType, func(t *testing.T) {
			var imgs [2][]byte
			for i, isNew := range []bool{false, true} {
				src := t.TempDir()
				release(t, src, isNew)
				imgs[i] = testutil.MakeFS(t, fsType, src)
			}
			old, new := imgs[0], imgs[1]
			p := buildSigned(t, old, new)
			if got := applyDelta(t, p, old, nil); got[0].SHA256 != sha256.Sum256(new) {
				t.Fatal("the delta does not rebuild the new image")
			}
			pr, err := payload.NewReader(bytes.NewReader(p), nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range pr.Manifest().PartitionOperations {
				for _, e := range op.SrcExtents {
					if e.GetStartBlock() == payload.SparseHole || e.GetStartBlock()+e.GetNumBlocks() > uint64(len(old)/payload.BlockSize) {
						t.Fatalf("%v reads %v, not a block of the image", op.GetType(), e)
					}
				}
			}
			fs, err := payload.SummarizeFiles(pr.Manifest(), bytes.NewReader(new), int64(len(new)))
			if err != nil {
				t.Fatal(err)
			}
			// 20 binaries, the module and sparse.next changed: 22 files;
			// brand-new has no old version.
			if fs.Diffed.Files < 22 || fs.Replaced.Files > 1 {
				t.Errorf("files: %+v; want at least 22 diffed, at most 1 replaced", fs)
			}
			// Apart from the 40,000 random bytes one file grew by, a few
			// bytes changed in each file: diffed against its old version,
			// that costs a small part of its size.
			if limit := 40000 + fs.Diffed.Blocks*payload.BlockSize/100; fs.Diffed.DataBytes > limit {
				t.Errorf("diffed files cost %d bytes for %d blocks (more than %d): not diffed against their old versions", fs.Diffed.DataBytes, fs.Diffed.Blocks, limit)
			}
			for _, c := range fs.Costliest {
				if strings.HasSuffix(c.Path, "foo.ko") && (c.Kind != "diffed" || c.DataBytes > 1000) {
					t.Errorf("the module renamed into 6.1.0-57: %+v, want diffed for a few hundred bytes", c)
				}
			}
			t.Logf("%s: delta %d bytes; files %+v", fsType, len(p), fs)
			checkIndependently(t, p, old, new)
		})
	}
}

func buildSigned(t *testing.T, old, new []byte) []byte {
	t.Helper()
	opts := generate.DeltaBuildOptions{SignatureSizes: []int{256}, Sign: payload.SignWith([]crypto.Signer{key(t, "a")})}
	opts.Old = generate.File{R: bytes.NewReader(old), Size: int64(len(old))}
	opts.New = generate.File{R: bytes.NewReader(new), Size: int64(len(new))}
	var out bytes.Buffer
	if _, err := generate.BuildDelta(context.Background(), &out, opts); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// checkIndependently runs the independent checker (Debian's bspatch for
// BSDIFF) on a delta signed with key a.
func checkIndependently(t testing.TB, p, old, new []byte, args ...string) {
	t.Helper()
	testutil.RequireTools(t, "python3", "openssl", "bspatch")
	dir := t.TempDir()
	for name, b := range map[string][]byte{"old": old, "new": new, "delta": p} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	argv := append([]string{"../../testdata/checker/crau_check.py", filepath.Join(dir, "delta"),
		"--pubkey", vectors + "TEST-ONLY-key-a.pub.pem", "--old", filepath.Join(dir, "old"), "--image", filepath.Join(dir, "new")}, args...)
	cmd := exec.Command("python3", argv...)
	if o, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(o)) != "OK" {
		t.Fatalf("independent checker: %v\n%s", err, o)
	}
}

// The same images give the same delta whatever the core count: file
// diffs, grouped full operations and merged cycles run in parallel.
func TestDeltaDeterministicAcrossCores(t *testing.T) {
	var imgs [2][]byte
	for i, isNew := range []bool{false, true} {
		src := t.TempDir()
		release(t, src, isNew)
		imgs[i] = testutil.MakeFS(t, "ext4", src)
	}
	var first []byte
	for _, procs := range []int{1, 2, 5} {
		old := runtime.GOMAXPROCS(procs)
		p := buildDelta(t, imgs[0], imgs[1], nil, nil)
		runtime.GOMAXPROCS(old)
		if first == nil {
			first = p
		} else if !bytes.Equal(p, first) {
			t.Fatalf("GOMAXPROCS=%d: the delta differs", procs)
		}
	}
}
