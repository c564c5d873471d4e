package bsdiff

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

// BSDIFF blobs made by the real generator apply to their source bytes:
// here, the kernel delta of testdata/vectors/delta-signed.bin, whose source
// is the whole old kernel, checked against the new kernel.
func TestGeneratorPatch(t *testing.T) {
	old, err := os.ReadFile("../../testdata/vectors/vmlinuz-old")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile("../../testdata/vectors/vmlinuz-new")
	patch := generatorKernelPatch(t)
	got, err := Patch(old, patch, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// The operation's dst_length covers whole blocks of the new kernel.
	if !bytes.Equal(got[:len(want)], want) {
		t.Fatal("patched kernel differs")
	}
}

// generatorKernelPatch cuts the kernel's BSDIFF blob out of the delta
// vector: it is the last operation's data, right before the signatures.
func generatorKernelPatch(t *testing.T) []byte {
	b, err := os.ReadFile("../../testdata/vectors/delta-signed.bin")
	if err != nil {
		t.Fatal(err)
	}
	// delta-signed.bin: data ends at len - 264 (one signature); the kernel
	// BSDIFF blob is 24074 bytes (see testdata/cli/inspect-delta-json.txt).
	end := len(b) - 264
	return b[end-24074 : end]
}

// Patches made by Debian's bsdiff apply, and give what Debian's bspatch
// gives.
func TestDebianBsdiff(t *testing.T) {
	testutil.RequireTools(t, "bsdiff", "bspatch")
	dir := t.TempDir()
	old := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog\n"), 2000)
	newer := bytes.ReplaceAll(old, []byte("lazy"), []byte("sleepy"))
	newer = append(newer, "and then some more text at the end"...)
	p := func(n string) string { return filepath.Join(dir, n) }
	os.WriteFile(p("old"), old, 0o644)
	os.WriteFile(p("new"), newer, 0o644)
	if out, err := exec.Command("bsdiff", p("old"), p("new"), p("patch")).CombinedOutput(); err != nil {
		t.Fatalf("bsdiff: %v %s", err, out)
	}
	patch, _ := os.ReadFile(p("patch"))
	got, err := Patch(old, patch, int64(len(newer)))
	if err != nil || !bytes.Equal(got, newer) {
		t.Fatalf("Patch: %v", err)
	}
	if _, err := Patch(old, patch, int64(len(newer))-1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("limit not enforced: %v", err)
	}
	if out, err := exec.Command("bspatch", p("old"), p("new2"), p("patch")).CombinedOutput(); err != nil {
		t.Fatalf("bspatch: %v %s", err, out)
	}
	deb, _ := os.ReadFile(p("new2"))
	if sha256.Sum256(deb) != sha256.Sum256(got) {
		t.Fatal("differs from Debian's bspatch")
	}
}

func TestCorruptPatches(t *testing.T) {
	patch := generatorKernelPatch(t)
	for _, tc := range []struct {
		name  string
		patch []byte
	}{
		{"no header", []byte("BSDIFF4")},
		{"bad magic", append([]byte("BSDIFF41"), patch[8:]...)},
		{"truncated", patch[:len(patch)/2]},
		{"bad lengths", append(append(bytes.Clone(patch[:8]), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), patch[16:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Patch(nil, tc.patch, 1<<20); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func FuzzPatch(f *testing.F) {
	f.Add([]byte("old data"), []byte("BSDIFF40"))
	f.Fuzz(func(t *testing.T, old, patch []byte) {
		out, err := Patch(old, patch, 1<<16)
		if err == nil && len(out) > 1<<16 {
			t.Fatal("limit exceeded")
		}
	})
}
