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

// pairs returns old/new pairs with the edits deltas meet: changed bytes,
// insertions, deletions, moved ranges, empty sides, long runs.
func pairs() [][2][]byte {
	rng := rand.New(rand.NewChaCha8([32]byte{7}))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	base := append(random(50000), bytes.Repeat([]byte("symbol_table_entry "), 3000)...)
	edit := bytes.Clone(base)
	copy(edit[1000:], random(300))
	edit = append(edit[:20000], append(random(777), edit[20000:]...)...)
	edit = append(edit[:40000], edit[45000:]...)
	moved := append(bytes.Clone(base[30000:]), base[:30000]...)
	return [][2][]byte{
		{base, edit},
		{base, moved},
		{base, base},
		{nil, base[:1000]},
		{base[:1000], nil},
		{make([]byte, 100000), append(make([]byte, 50000), random(10)...)},
		{random(5000), random(5000)},
	}
}

func TestDiffRoundTrip(t *testing.T) {
	for i, p := range pairs() {
		patch, err := Diff(p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		got, err := Patch(p[0], patch, int64(len(p[1])))
		if err != nil || !bytes.Equal(got, p[1]) {
			t.Fatalf("pair %d: round trip failed (%v)", i, err)
		}
		again, _ := Diff(p[0], p[1])
		if !bytes.Equal(again, patch) {
			t.Fatalf("pair %d: not deterministic", i)
		}
		if i == 0 && len(patch) > len(p[1])/10 {
			t.Errorf("pair 0: patch of %d bytes for %d similar bytes", len(patch), len(p[1]))
		}
	}
}

// Every patch Diff makes is applied by Debian's bspatch to the same bytes.
func TestDiffAcceptedByDebianBspatch(t *testing.T) {
	testutil.RequireTools(t, "bspatch")
	dir := t.TempDir()
	for i, p := range pairs() {
		patch, err := Diff(p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		o, n, pf := filepath.Join(dir, "old"), filepath.Join(dir, "new"), filepath.Join(dir, "patch")
		os.WriteFile(o, p[0], 0o644)
		os.WriteFile(pf, patch, 0o644)
		if out, err := exec.Command("bspatch", o, n, pf).CombinedOutput(); err != nil {
			t.Fatalf("pair %d: bspatch: %v %s", i, err, out)
		}
		if got, _ := os.ReadFile(n); !bytes.Equal(got, p[1]) {
			t.Fatalf("pair %d: bspatch result differs", i)
		}
	}
}

func FuzzDiff(f *testing.F) {
	f.Add([]byte("hello world"), []byte("hello brave new world"))
	f.Fuzz(func(t *testing.T, old, new []byte) {
		patch, err := Diff(old, new)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Patch(old, patch, int64(len(new)))
		if err != nil || !bytes.Equal(got, new) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

// search finds the longest match, with and without the two-byte buckets,
// on repetitive data where many suffixes share long prefixes.
func TestSearchLongest(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, n := range []int{10, 5000, bucketMin + 3000} {
		old := make([]byte, n)
		for i := range old {
			old[i] = byte(rng.IntN(3))
		}
		x, err := newIndex(old)
		if err != nil {
			t.Fatal(err)
		}
		if (x.bucket != nil) != (n >= bucketMin) {
			t.Fatalf("n=%d: buckets %v", n, x.bucket != nil)
		}
		for range 300 {
			q := make([]byte, 1+rng.IntN(40))
			if rng.IntN(2) == 0 {
				p := rng.IntN(n)
				copy(q, old[p:])
			}
			for i := range q {
				if rng.IntN(20) == 0 {
					q[i] = byte(rng.IntN(4))
				}
			}
			length, pos := x.search(q)
			if !bytes.Equal(old[pos:pos+length], q[:length]) {
				t.Fatalf("n=%d: match at %d of %d bytes is not one", n, pos, length)
			}
			best := 0
			for p := range old {
				best = max(best, matchLen(old[p:], q))
			}
			if length != best {
				t.Fatalf("n=%d %v: match of %d bytes, longest is %d", n, q, length, best)
			}
		}
	}
}
