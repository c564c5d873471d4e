package generate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"testing"

	"io"

	"github.com/augen-project/augen/internal/bsdiff"
	"github.com/augen-project/augen/internal/fsmap"
	"github.com/augen-project/augen/internal/pbzip2"
	"github.com/augen-project/augen/payload"
)

// layout builds an image of n blocks holding files at the given runs, and
// its map. Blocks no file holds are zero.
type layout struct {
	n     uint64
	files []fsmap.File
	data  [][]byte // each file's content, whole blocks
}

func (l *layout) image(t *testing.T) ([]byte, *fsmap.Map) {
	t.Helper()
	img := make([]byte, l.n*payload.BlockSize)
	m := &fsmap.Map{Kind: "test", Owner: make([]int32, l.n)}
	for i, f := range l.files {
		at := l.data[i]
		for _, r := range f.Blocks {
			for b := r.Start; b < r.Start+r.Count; b++ {
				if m.Owner[b] != 0 {
					t.Fatalf("block %d held twice", b)
				}
				m.Owner[b] = int32(i + 1)
				copy(img[b*payload.BlockSize:], at[:payload.BlockSize])
				at = at[payload.BlockSize:]
			}
		}
		if len(at) != 0 {
			t.Fatalf("%s: %d bytes left over", f.Path, len(at))
		}
		m.Files = append(m.Files, f)
	}
	return img, m
}

// binary is content bsdiff finds again after a few changes: random bytes
// (which no other block shares).
func binary(seed byte, blocks int) []byte {
	b := make([]byte, blocks*payload.BlockSize)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// edit changes a few bytes of b, in every block, so no block of the new
// version exists in the old image.
func edit(b []byte) []byte {
	c := bytes.Clone(b)
	for i := 100; i < len(c); i += payload.BlockSize {
		c[i] ^= 0x5a
	}
	return c
}

// planWithMaps builds a delta from old to new with the given file maps,
// applies it in place with the package's simulator and returns its
// partition operations.
func planWithMaps(t *testing.T, old, new []byte, oldMap, newMap *fsmap.Map) []*payload.Operation {
	t.Helper()
	defer func(f func(DeltaOptions) (*fsmap.Map, *fsmap.Map, error)) { readFileMaps = f }(readFileMaps)
	readFileMaps = func(DeltaOptions) (*fsmap.Map, *fsmap.Map, error) { return oldMap, newMap, nil }
	m, blobs, err := Delta(context.Background(), DeltaOptions{
		Old: File{R: bytes.NewReader(old), Size: int64(len(old))},
		New: File{R: bytes.NewReader(new), Size: int64(len(new))},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Apply in place, in order, as the client does.
	img := bytes.Clone(old)
	read := func(ext []*payload.Extent) []byte {
		var out []byte
		for _, e := range ext {
			if e.GetStartBlock() == payload.SparseHole || e.GetStartBlock()+e.GetNumBlocks() > uint64(len(img)/payload.BlockSize) {
				t.Fatalf("source extent %v is not in the image", e)
			}
			out = append(out, img[e.GetStartBlock()*payload.BlockSize:(e.GetStartBlock()+e.GetNumBlocks())*payload.BlockSize]...)
		}
		return out
	}
	for _, op := range m.PartitionOperations {
		var data []byte
		switch op.GetType() {
		case payload.OpMove:
			data = read(op.SrcExtents)
		case payload.OpBsdiff:
			data = bspatchForTest(t, read(op.SrcExtents)[:op.GetSrcLength()], blobs[op.GetDataOffset():op.GetDataOffset()+op.GetDataLength()])
		default:
			data = fullData(t, op, blobs)
		}
		for _, e := range op.DstExtents {
			n := e.GetNumBlocks() * payload.BlockSize
			copy(img[e.GetStartBlock()*payload.BlockSize:], data[:n])
			data = data[n:]
		}
	}
	if sha256.Sum256(img) != sha256.Sum256(new) {
		t.Fatal("the delta does not rebuild the new image")
	}
	return m.PartitionOperations
}

// fileOp finds the operation writing block b.
func fileOp(ops []*payload.Operation, b uint64) *payload.Operation {
	for _, op := range ops {
		for _, e := range op.DstExtents {
			if b >= e.GetStartBlock() && b < e.GetStartBlock()+e.GetNumBlocks() {
				return op
			}
		}
	}
	return nil
}

func runs(ext []*payload.Extent) []fsmap.Run {
	var out []fsmap.Run
	for _, e := range ext {
		out = append(out, fsmap.Run{Start: e.GetStartBlock(), Count: e.GetNumBlocks()})
	}
	return out
}

func sameRuns(a, b []fsmap.Run) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The old version is fragmented: the BSDIFF reads its fragments in file
// order, and nothing else.
func TestFileDeltaFragmentedOld(t *testing.T) {
	content := binary(1, 8)
	oldL := layout{n: 64, files: []fsmap.File{{Path: "usr/bin/tool", Blocks: []fsmap.Run{rn(30, 4), rn(10, 4)}}}, data: [][]byte{content}}
	newL := layout{n: 64, files: []fsmap.File{{Path: "usr/bin/tool", Blocks: []fsmap.Run{rn(40, 8)}}}, data: [][]byte{edit(content)}}
	old, om := oldL.image(t)
	new, nm := newL.image(t)
	ops := planWithMaps(t, old, new, om, nm)
	op := fileOp(ops, 40)
	if op.GetType() != payload.OpBsdiff || !sameRuns(runs(op.SrcExtents), []fsmap.Run{rn(30, 4), rn(10, 4)}) || !sameRuns(runs(op.DstExtents), []fsmap.Run{rn(40, 8)}) {
		t.Fatalf("got %v %v -> %v, want BSDIFF from [30+4 10+4] to [40+8]", op.GetType(), op.SrcExtents, op.DstExtents)
	}
	if op.GetDataLength() > 2000 {
		t.Fatalf("patch of %d bytes for 8 changed bytes", op.GetDataLength())
	}
}

// A file that grows past a fragment: its new blocks are its old place and
// a run elsewhere; one BSDIFF writes both, in file order, from the old
// version.
func TestFileDeltaGrowsPastFragment(t *testing.T) {
	content := binary(2, 6)
	grown := append(edit(content), binary(3, 4)[:4*payload.BlockSize]...)
	other := binary(4, 4)
	oldL := layout{n: 64, files: []fsmap.File{
		{Path: "usr/lib/libx.so.1", Blocks: []fsmap.Run{rn(10, 6)}},
		{Path: "usr/lib/liby.so.1", Blocks: []fsmap.Run{rn(16, 4)}},
	}, data: [][]byte{content, other}}
	newL := layout{n: 64, files: []fsmap.File{
		{Path: "usr/lib/libx.so.1", Blocks: []fsmap.Run{rn(10, 6), rn(40, 4)}},
		{Path: "usr/lib/liby.so.1", Blocks: []fsmap.Run{rn(16, 4)}},
	}, data: [][]byte{grown, other}}
	old, om := oldL.image(t)
	new, nm := newL.image(t)
	ops := planWithMaps(t, old, new, om, nm)
	op := fileOp(ops, 40)
	if op.GetType() != payload.OpBsdiff || !sameRuns(runs(op.DstExtents), []fsmap.Run{rn(10, 6), rn(40, 4)}) || !sameRuns(runs(op.SrcExtents), []fsmap.Run{rn(10, 6)}) {
		t.Fatalf("got %v %v -> %v, want BSDIFF from [10+6] to [10+6 40+4]", op.GetType(), op.SrcExtents, op.DstExtents)
	}
	if fileOp(ops, 16) != nil {
		t.Fatal("the unchanged neighbour is rewritten")
	}
}

// A file renamed into a new version directory is diffed against the file
// it was renamed from, even when that lies where the new image puts other
// data (the cycle this makes is merged, not paid for).
func TestFileDeltaRenamedVersionDir(t *testing.T) {
	ko, conf := binary(5, 8), binary(6, 4)
	oldL := layout{n: 64, files: []fsmap.File{
		{Path: "lib/modules/6.1.0-56-flatcar/kernel/fs/foo.ko", Blocks: []fsmap.Run{rn(8, 8)}},
		{Path: "lib/modules/6.1.0-56-flatcar/modules.dep", Blocks: []fsmap.Run{rn(20, 4)}},
	}, data: [][]byte{ko, conf}}
	newL := layout{n: 64, files: []fsmap.File{
		{Path: "lib/modules/6.1.0-57-flatcar/kernel/fs/foo.ko", Blocks: []fsmap.Run{rn(20, 8)}},
		{Path: "lib/modules/6.1.0-57-flatcar/modules.dep", Blocks: []fsmap.Run{rn(8, 4)}},
	}, data: [][]byte{edit(ko), edit(conf)}}
	old, om := oldL.image(t)
	new, nm := newL.image(t)
	claimed := make([]bool, 64)
	jobs := planFiles(om, nm, make([]bool, 64), func(uint64) bool { return false }, claimed)
	if len(jobs) != 2 || jobs[0].path != nm.Files[0].Path || !sameRuns(jobs[0].src, []fsmap.Run{rn(8, 8)}) || !sameRuns(jobs[1].src, []fsmap.Run{rn(20, 4)}) {
		t.Fatalf("jobs %+v: want each file diffed against its 6.1.0-56 version", jobs)
	}
	ops := planWithMaps(t, old, new, om, nm)
	for _, b := range []uint64{20, 8} {
		op := fileOp(ops, b)
		if op.GetType() != payload.OpBsdiff || op.GetDataLength() > 4000 {
			t.Fatalf("block %d: %v of %d bytes, want a small BSDIFF from the renamed file", b, op.GetType(), op.GetDataLength())
		}
	}
}

// Without an old version anywhere (a new file), the block method applies:
// the content is sent in full, as REPLACE when it looks compressed (random
// bytes here).
func TestFileDeltaNewFile(t *testing.T) {
	oldL := layout{n: 32, files: []fsmap.File{{Path: "a", Blocks: []fsmap.Run{rn(4, 2)}}}, data: [][]byte{binary(7, 2)}}
	newL := layout{n: 32, files: []fsmap.File{{Path: "a", Blocks: []fsmap.Run{rn(4, 2)}}, {Path: "b", Blocks: []fsmap.Run{rn(10, 2)}}}, data: [][]byte{binary(7, 2), binary(8, 2)}}
	old, om := oldL.image(t)
	new, nm := newL.image(t)
	ops := planWithMaps(t, old, new, om, nm)
	if op := fileOp(ops, 10); op == nil || op.GetType() != payload.OpReplace || fileOp(ops, 11) != op {
		t.Fatalf("new file written by %v", op)
	}
}

// A rewritten compressed file (btrfs zstd extents) at a new place: its
// unchanged extents are MOVEs from their old blocks; blocks that look like
// compressed data are REPLACEs bzip2 is never offered, packed into one
// operation; its other blocks (text, a compressed extent's zero tail) are
// compressed.
func TestFileDeltaCompressedFile(t *testing.T) {
	oldA := binary(1, 8)
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog\n"), 100)[:payload.BlockSize]
	tail := append(binary(3, 1)[:payload.BlockSize/2], make([]byte, payload.BlockSize/2)...)
	newA := bytes.Join([][]byte{oldA[:2*payload.BlockSize], binary(2, 3), text, tail, binary(4, 1)}, nil)
	oldL := layout{n: 64, files: []fsmap.File{{Path: "a", Compressed: true, Blocks: []fsmap.Run{rn(0, 8)}}}, data: [][]byte{oldA}}
	newL := layout{n: 64, files: []fsmap.File{{Path: "a", Compressed: true, Blocks: []fsmap.Run{rn(20, 8)}}}, data: [][]byte{newA}}
	old, om := oldL.image(t)
	new, nm := newL.image(t)
	ops := planWithMaps(t, old, new, om, nm)
	if op := fileOp(ops, 20); op.GetType() != payload.OpMove || fileOp(ops, 21) != op || !sameRuns(runs(op.SrcExtents), []fsmap.Run{rn(0, 2)}) {
		t.Errorf("unchanged extents written by %v", op)
	}
	raw := fileOp(ops, 22)
	if raw.GetType() != payload.OpReplace || fileOp(ops, 27) != raw || !sameRuns(runs(raw.DstExtents), []fsmap.Run{rn(22, 3), rn(27, 1)}) {
		t.Errorf("compressed-looking blocks written by %v", raw)
	}
	if op := fileOp(ops, 25); op.GetType() != payload.OpReplaceBz || fileOp(ops, 26) != op {
		t.Errorf("text and zero tail written by %v", op)
	}
}

func TestLooksRandom(t *testing.T) {
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog\n"), 100)[:payload.BlockSize]
	half := append(binary(3, 1)[:payload.BlockSize/2], make([]byte, payload.BlockSize/2)...)
	for _, c := range []struct {
		name  string
		block []byte
		want  bool
	}{
		{"random", binary(9, 1), true},
		{"text", text, false},
		{"zeros", make([]byte, payload.BlockSize), false},
		{"half random, half zeros", half, false},
	} {
		if got := looksRandom(c.block); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestRenameKey(t *testing.T) {
	for _, c := range [][2]string{
		{"lib/modules/6.1.0-56-flatcar/kernel/foo.ko", "lib/modules/6.1.0-57-flatcar/kernel/foo.ko"},
		{"lib64/libfoo.so.1.2.3", "lib64/libfoo.so.1.2.14"},
		{"share/doc/pkg-9/README", "share/doc/pkg-10/README"},
	} {
		if renameKey(c[0]) != renameKey(c[1]) {
			t.Errorf("%s and %s have different keys", c[0], c[1])
		}
	}
	if renameKey("bin/a1") == renameKey("bin/b1") {
		t.Error("different names share a key")
	}
}

func bspatchForTest(t *testing.T, src, patch []byte) []byte {
	t.Helper()
	out, err := bsdiff.Patch(src, patch, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fullData(t *testing.T, op *payload.Operation, blobs []byte) []byte {
	t.Helper()
	data := blobs[op.GetDataOffset() : op.GetDataOffset()+op.GetDataLength()]
	if op.GetType() == payload.OpReplace {
		return data
	}
	out, err := io.ReadAll(pbzip2.NewReader(bytes.NewReader(data), 1))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func rn(start, count uint64) fsmap.Run { return fsmap.Run{Start: start, Count: count} }

// Random releases planned file by file — files edited, grown, shrunk,
// renamed into a new version directory, removed, added, scattered over
// fragments and swapped into each other's places (cycles) — always apply
// in place to exactly the new image (planWithMaps applies and checks).
func TestFileDeltaProperty(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{11}))
	iterations := 60
	if testing.Short() {
		iterations = 15
	}
	for it := range iterations {
		n := uint64(64 + rng.IntN(192))
		// place puts blocks of content into free blocks of a layout.
		place := func(l *layout, free map[uint64]bool, path string, content []byte) {
			m := len(content) / payload.BlockSize
			var cand []uint64
			for b := uint64(0); b < n; b++ {
				if free[b] {
					cand = append(cand, b)
				}
			}
			if len(cand) < m {
				return
			}
			var blocks []uint64
			if rng.IntN(2) == 0 { // contiguous from a random free start, if it fits
				start := cand[rng.IntN(len(cand))]
				for b := start; b < n && free[b] && len(blocks) < m; b++ {
					blocks = append(blocks, b)
				}
			}
			if len(blocks) < m { // scattered, in random order
				blocks = blocks[:0]
				for _, i := range rng.Perm(len(cand))[:m] {
					blocks = append(blocks, cand[i])
				}
			}
			f := fsmap.File{Path: path}
			for _, b := range blocks {
				free[b] = false
				if k := len(f.Blocks) - 1; k >= 0 && f.Blocks[k].Start+f.Blocks[k].Count == b {
					f.Blocks[k].Count++
				} else {
					f.Blocks = append(f.Blocks, rn(b, 1))
				}
			}
			l.files = append(l.files, f)
			l.data = append(l.data, content)
		}
		allFree := func() map[uint64]bool {
			m := map[uint64]bool{}
			for b := range n {
				m[b] = true
			}
			return m
		}
		oldL, newL := layout{n: n}, layout{n: n}
		oldFree, newFree := allFree(), allFree()
		nFiles := 4 + rng.IntN(12)
		for i := range nFiles {
			content := binary(byte(it*16+i), 1+rng.IntN(10))
			path := "lib/modules/6.1.0-56/f" + string(rune('a'+i))
			place(&oldL, oldFree, path, content)
			switch rng.IntN(7) {
			case 0: // unchanged
			case 1:
				content = edit(content)
			case 2: // grows
				content = append(edit(content), binary(byte(200+i), 1+rng.IntN(4))...)
			case 3: // shrinks
				if len(content) > payload.BlockSize {
					content = edit(content[:len(content)-payload.BlockSize])
				}
			case 4: // renamed into the new version directory
				path = "lib/modules/6.1.0-57/f" + string(rune('a'+i))
				content = edit(content)
			case 5: // removed
				continue
			}
			place(&newL, newFree, path, content)
		}
		place(&newL, newFree, "bin/new", binary(byte(it), 1+rng.IntN(3)))
		old, om := oldL.image(t)
		new, nm := newL.image(t)
		planWithMaps(t, old, new, om, nm) // fails unless it rebuilds new
	}
}

// unrelated decides, on anchors alone, that a file replaced by other
// random bytes has nothing for bsdiff, and that an edited text does; too
// little varied content to judge is never called unrelated.
func TestUnrelated(t *testing.T) {
	a, b := make([]byte, 1<<20), make([]byte, 1<<20)
	r1, r2 := rand.NewChaCha8([32]byte{1}), rand.NewChaCha8([32]byte{2})
	r1.Read(a)
	r2.Read(b)
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog, "), 20000)
	edited := append(bytes.Clone(text[:400000]), append([]byte("an edit"), text[400000:]...)...)
	switch {
	case !unrelated(a, b):
		t.Error("two random files are related")
	case unrelated(a, a[1000:]):
		t.Error("a file and its shifted copy are unrelated")
	case unrelated(text, edited):
		t.Error("an edited text is unrelated to its old version")
	case unrelated(a[:4096], b[:4096]):
		t.Error("4 KiB (too few anchors) judged unrelated")
	}
}
