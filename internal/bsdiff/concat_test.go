package bsdiff

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

// A concatenated patch turns the concatenated old data into the
// concatenated outputs, here and in Debian's bspatch.
func TestConcat(t *testing.T) {
	src := rand.NewChaCha8([32]byte{3})
	rng := rand.New(src)
	var parts []Part
	var old, want []byte
	for i := range 6 {
		o := make([]byte, 1000+rng.IntN(20000))
		src.Read(o)
		n := bytes.Clone(o)
		switch i % 3 {
		case 0: // a copy
			parts = append(parts, Part{OldLen: int64(len(o))})
		case 1: // a few bytes changed, some inserted
			n[len(n)/2] ^= 1
			n = append(n[:100], append([]byte("inserted"), n[100:]...)...)
			fallthrough
		default:
			p, err := Diff(o, n)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, Part{Patch: p, OldLen: int64(len(o))})
		}
		old, want = append(old, o...), append(want, n...)
	}
	p, err := Concat(parts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Patch(old, p, 1<<30)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Concat's patch: %v (output equal: %v)", err, bytes.Equal(got, want))
	}
	testutil.RequireTools(t, "bspatch")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "old"), old, 0o644)
	os.WriteFile(filepath.Join(dir, "patch"), p, 0o644)
	if out, err := exec.Command("bspatch", filepath.Join(dir, "old"), filepath.Join(dir, "new"), filepath.Join(dir, "patch")).CombinedOutput(); err != nil {
		t.Fatalf("bspatch: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "new")); !bytes.Equal(b, want) {
		t.Fatal("bspatch's output differs")
	}
}

func TestConcatCorrupt(t *testing.T) {
	if _, err := Concat([]Part{{Patch: []byte("BSDIFF40 short"), OldLen: 1}}); err == nil {
		t.Fatal("a short patch is accepted")
	}
}
