package generate_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/apply"
	"github.com/augen-project/augen/payload/generate"
)

func buildDelta(t testing.TB, old, new, oldK, newK []byte) []byte {
	t.Helper()
	opts := generate.DeltaBuildOptions{}
	opts.Old = generate.File{R: bytes.NewReader(old), Size: int64(len(old))}
	opts.New = generate.File{R: bytes.NewReader(new), Size: int64(len(new))}
	if newK != nil {
		opts.Kernel = generate.File{R: bytes.NewReader(newK), Size: int64(len(newK))}
	}
	if oldK != nil {
		opts.OldKernel = generate.File{R: bytes.NewReader(oldK), Size: int64(len(oldK))}
	}
	var out bytes.Buffer
	if _, err := generate.BuildDelta(context.Background(), &out, opts); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// applyDelta applies p in place on a copy of old and returns what it
// rebuilt.
func applyDelta(t testing.TB, p, old, oldK []byte) []apply.Rebuilt {
	t.Helper()
	dir := t.TempDir()
	op, ok := filepath.Join(dir, "old"), filepath.Join(dir, "oldk")
	os.WriteFile(op, old, 0o644)
	os.WriteFile(ok, oldK, 0o644)
	pr, err := payload.NewReader(bytes.NewReader(p), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := apply.Simulate(context.Background(), pr, apply.Sources{Partition: op, Kernel: ok, TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestDeltaVectors(t *testing.T) {
	old, new := unbz(t, vectors+"usr-old.bin.bz2"), unbz(t, vectors+"usr-new.bin.bz2")
	oldK, newK := read(t, vectors+"vmlinuz-old"), read(t, vectors+"vmlinuz-new")
	p := buildDelta(t, old, new, oldK, newK)
	got := applyDelta(t, p, old, oldK)
	if len(got) != 2 {
		t.Fatalf("rebuilt %v", got)
	}
	ref := read(t, vectors+"delta-signed.bin")
	pr, _ := payload.NewReader(bytes.NewReader(p), nil)
	pr.ReadAll()
	s, _ := payload.Summarize(pr, nil)
	t.Logf("augen delta: %d bytes (unsigned); delta_generator: %d bytes (signed, 264 of them signature); ops %+v kernel %+v", len(p), len(ref), s.Operations, s.Procedures[0].Operations)
}

// Random old/new pairs — moved, changed, inserted and deleted ranges, and
// cycles of swapped blocks — always apply in place to exactly the new image.
func TestDeltaProperty(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{9}))
	iterations := 40
	if testing.Short() {
		iterations = 8
	}
	for it := range iterations {
		nBlocks := 16 + rng.IntN(200)
		// A pool of block contents, so identical blocks recur.
		pool := make([][]byte, 8+rng.IntN(nBlocks))
		for i := range pool {
			pool[i] = make([]byte, payload.BlockSize)
			switch rng.IntN(3) {
			case 0:
				rand.NewChaCha8([32]byte{byte(it), byte(i), 1}).Read(pool[i])
			case 1:
				for j := range pool[i] {
					pool[i][j] = byte(j * i)
				}
			}
		}
		old := make([][]byte, nBlocks)
		for i := range old {
			old[i] = pool[rng.IntN(len(pool))]
		}
		blocks := append([][]byte(nil), old...)
		for range 1 + rng.IntN(6) {
			a, b := rng.IntN(nBlocks), rng.IntN(nBlocks)
			switch rng.IntN(5) {
			case 0: // swap: cycles of moves
				blocks[a], blocks[b] = blocks[b], blocks[a]
			case 1: // rotate a range: a longer cycle
				lo, hi := min(a, b), max(a, b)
				if hi > lo {
					blocks = append(blocks[:lo], append(append([][]byte{blocks[hi]}, blocks[lo:hi]...), blocks[hi+1:]...)...)
				}
			case 2: // change a block slightly
				c := bytes.Clone(blocks[a])
				c[rng.IntN(len(c))] ^= 0xff
				blocks[a] = c
			case 3: // insert a range (shifting the rest), dropping the tail
				ins := make([][]byte, 1+rng.IntN(4))
				for i := range ins {
					ins[i] = pool[rng.IntN(len(pool))]
				}
				blocks = append(blocks[:a], append(ins, blocks[a:]...)...)[:nBlocks]
			case 4: // delete a range, padding the end
				n := min(1+rng.IntN(4), nBlocks-a)
				blocks = append(blocks[:a], blocks[a+n:]...)
				for len(blocks) < nBlocks {
					blocks = append(blocks, pool[rng.IntN(len(pool))])
				}
			}
		}
		oldImg, newImg := bytes.Join(old, nil), bytes.Join(blocks, nil)
		p := buildDelta(t, oldImg, newImg, nil, nil)
		got := applyDelta(t, p, oldImg, nil)
		if got[0].SHA256 != sha256.Sum256(newImg) {
			t.Fatalf("iteration %d: the delta does not rebuild the new image", it)
		}
	}
}

// Two blocks swapped with each other is a cycle: neither MOVE can run
// first. The client reads all of an operation's source before writing, so
// the two become one MOVE, which costs no data.
func TestDeltaMergesCycles(t *testing.T) {
	a, b := make([]byte, payload.BlockSize), make([]byte, payload.BlockSize)
	rand.NewChaCha8([32]byte{1}).Read(a)
	rand.NewChaCha8([32]byte{2}).Read(b)
	old := append(bytes.Clone(a), b...)
	new := append(bytes.Clone(b), a...)
	p := buildDelta(t, old, new, nil, nil)
	pr, _ := payload.NewReader(bytes.NewReader(p), nil)
	ops := pr.Manifest().PartitionOperations
	if len(ops) != 1 || ops[0].GetType() != payload.OpMove || len(ops[0].SrcExtents) != 2 {
		t.Fatalf("operations %v, want one MOVE of both blocks", ops)
	}
	if got := applyDelta(t, p, old, nil); got[0].SHA256 != sha256.Sum256(new) {
		t.Fatal("wrong result")
	}
}

// A delta applied to the wrong old image is refused before anything is
// written.
func TestDeltaRefusesWrongOld(t *testing.T) {
	old, new := unbz(t, vectors+"usr-old.bin.bz2"), unbz(t, vectors+"usr-new.bin.bz2")
	p := buildDelta(t, old, new, nil, nil)
	dir := t.TempDir()
	wrong := filepath.Join(dir, "wrong")
	os.WriteFile(wrong, new, 0o644)
	pr, _ := payload.NewReader(bytes.NewReader(p), nil)
	_, err := apply.Simulate(context.Background(), pr, apply.Sources{Partition: wrong, TempDir: dir})
	if !errors.Is(err, apply.ErrMismatch) || !strings.Contains(err.Error(), "the delta applies to") {
		t.Fatalf("got %v", err)
	}
}

// The independent checker (Debian's bspatch for BSDIFF) applies augen's
// delta of the vector pair in place to exactly usr-new.bin and vmlinuz-new.
func TestDeltaIndependentlyChecked(t *testing.T) {
	old, new := unbz(t, vectors+"usr-old.bin.bz2"), unbz(t, vectors+"usr-new.bin.bz2")
	oldK := read(t, vectors+"vmlinuz-old")
	p := build2sig(t, old, new, oldK, read(t, vectors+"vmlinuz-new"))
	checkIndependently(t, p, old, new, "--old-kernel", vectors+"vmlinuz-old", "--kernel", vectors+"vmlinuz-new")
}

func build2sig(t testing.TB, old, new, oldK, newK []byte) []byte {
	opts := generate.DeltaBuildOptions{SignatureSizes: []int{256}, Sign: payload.SignWith([]crypto.Signer{key(t, "a")})}
	opts.Old = generate.File{R: bytes.NewReader(old), Size: int64(len(old))}
	opts.New = generate.File{R: bytes.NewReader(new), Size: int64(len(new))}
	opts.OldKernel = generate.File{R: bytes.NewReader(oldK), Size: int64(len(oldK))}
	opts.Kernel = generate.File{R: bytes.NewReader(newK), Size: int64(len(newK))}
	var out bytes.Buffer
	if _, err := generate.BuildDelta(context.Background(), &out, opts); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// Images holding no filesystem augen reads are planned block by block,
// with a note saying so.
func TestDeltaNotesBlockMethod(t *testing.T) {
	old, new := make([]byte, 16*payload.BlockSize), make([]byte, 16*payload.BlockSize)
	rand.NewChaCha8([32]byte{5}).Read(new)
	var notes []string
	opts := generate.DeltaOptions{
		Old: generate.File{R: bytes.NewReader(old), Size: int64(len(old))},
		New: generate.File{R: bytes.NewReader(new), Size: int64(len(new))},
		Log: func(m string) { notes = append(notes, m) },
	}
	if _, _, err := generate.Delta(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "block by block") || !strings.Contains(notes[0], "no ext2/3/4 or btrfs filesystem") {
		t.Fatalf("notes %q", notes)
	}
}
