package apply_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/internal/pbzip2"
	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/apply"
)

// craft assembles an unsigned payload from m with one blob per partition
// operation (nil: no data), filling in offsets, lengths and hashes.
func craft(t testing.TB, m *payload.Manifest, blobs [][]byte) []byte {
	t.Helper()
	b, err := assemble(m, blobs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func assemble(m *payload.Manifest, blobs [][]byte) ([]byte, error) {
	var data bytes.Buffer
	for i, op := range m.PartitionOperations {
		op.DataOffset, op.DataLength, op.DataSha256Hash = nil, nil, nil
		if blobs[i] == nil {
			continue
		}
		sum := sha256.Sum256(blobs[i])
		op.DataOffset = proto.Uint32(uint32(data.Len()))
		op.DataLength = proto.Uint32(uint32(len(blobs[i])))
		op.DataSha256Hash = sum[:]
		data.Write(blobs[i])
	}
	var out bytes.Buffer
	if _, err := payload.Assemble(&out, m, &data, nil); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func bz2(t testing.TB, b []byte) []byte {
	t.Helper()
	return pbzip2.Compress(b, pbzip2.Stream)
}

// oneOp is a manifest for a partition of blocks blocks with one operation.
func oneOp(blocks uint64, typ payload.OperationType, dst ...*payload.Extent) *payload.Manifest {
	sum := sha256.Sum256(nil)
	return &payload.Manifest{
		BlockSize:           proto.Uint32(payload.BlockSize),
		NewPartitionInfo:    &payload.InstallInfo{Size: proto.Uint64(blocks * payload.BlockSize), Hash: sum[:]},
		PartitionOperations: []*payload.Operation{{Type: typ.Enum(), DstExtents: dst}},
	}
}

func ext(start, n uint64) *payload.Extent {
	return &payload.Extent{StartBlock: proto.Uint64(start), NumBlocks: proto.Uint64(n)}
}

// simulateOn simulates b on a copy of old (the old partition, checked
// against old_partition_info only by hash, so tests give the matching one).
func simulateOn(t *testing.T, b, old []byte) error {
	t.Helper()
	pr, err := payload.NewReader(bytes.NewReader(b), nil)
	if err != nil {
		return err
	}
	p := t.TempDir() + "/old"
	if err := os.WriteFile(p, old, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = apply.Simulate(context.Background(), pr, apply.Sources{Partition: p, TempDir: t.TempDir()})
	return err
}

func simulate(t *testing.T, b []byte, ctx context.Context, c *apply.Counters) error {
	t.Helper()
	pr, err := payload.NewReader(bytes.NewReader(b), nil)
	if err != nil {
		return err
	}
	dir := t.TempDir()
	_, err = apply.Simulate(ctx, pr, apply.Sources{TempDir: dir, Counters: c})
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%d temporary files left behind", len(ents))
	}
	return err
}

// Finding 1: an extent of 2^52-1 blocks made the decoder allocate for
// all of them (makeslice panic). The decoder may now produce only what
// the partition can take.
func TestHugeExtentDoesNotPanic(t *testing.T) {
	b := craft(t, oneOp(1, payload.OpReplaceBz, ext(0, 1<<52-1)), [][]byte{bz2(t, make([]byte, 4096))})
	var c apply.Counters
	err := simulate(t, b, context.Background(), &c)
	// The data fits; the rebuilt hash is not the manifest's.
	if !errors.Is(err, apply.ErrMismatch) {
		t.Fatalf("got %v", err)
	}
	if n := c.Decompressed.Load(); n != 4096 {
		t.Fatalf("decompressed %d bytes", n)
	}
}

// Finding 3: a small blob that decompresses to 64 MiB for a one-block
// destination is stopped inside the first bzip2 block, and an operation
// whose destination lies outside the partition is refused before its data
// is decompressed at all.
func TestDecompressionBoundedByDestination(t *testing.T) {
	bomb := bz2(t, make([]byte, 64<<20))
	var c apply.Counters
	b := craft(t, oneOp(2, payload.OpReplaceBz, ext(0, 1)), [][]byte{bomb})
	testutil.SaveCrafted(t, "3-bomb.payload", b)
	err := simulate(t, b, context.Background(), &c)
	if !errors.Is(err, apply.ErrApply) || !strings.Contains(err.Error(), "more than the bytes it may fill") {
		t.Fatalf("bomb: got %v", err)
	}
	if n := c.Decompressed.Load(); n != 0 {
		t.Fatalf("bomb: %d bytes decompressed", n)
	}
	err = simulate(t, craft(t, oneOp(2, payload.OpReplaceBz, ext(5, 1)), [][]byte{bomb}), context.Background(), &c)
	if !errors.Is(err, apply.ErrApply) || !strings.Contains(err.Error(), "past the end") {
		t.Fatalf("outside: got %v", err)
	}
	if n := c.Decompressed.Load(); n != 0 {
		t.Fatalf("outside: %d bytes decompressed", n)
	}
}

// Finding 3: a payload declaring a 16 TiB partition is refused before a
// file is created (it used to run for hours).
func TestPartitionSizeCapped(t *testing.T) {
	m := oneOp(2, payload.OpReplace, ext(0, 1))
	m.NewPartitionInfo.Size = proto.Uint64(16 << 40)
	var c apply.Counters
	b := craft(t, m, [][]byte{make([]byte, 4096)})
	testutil.SaveCrafted(t, "3-16tib.payload", b)
	err := simulate(t, b, context.Background(), &c)
	if !errors.Is(err, apply.ErrApply) || !strings.Contains(err.Error(), "over augen's limit") {
		t.Fatalf("got %v", err)
	}
	if c.Operations.Load() != 0 {
		t.Fatal("operations ran")
	}
}

// A canceled context stops the apply, and its temporary files go.
func TestSimulateCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := simulate(t, craft(t, oneOp(2, payload.OpReplace, ext(0, 1)), [][]byte{make([]byte, 4096)}), ctx, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// FuzzApply applies arbitrary manifests and data to an 8-block partition:
// no panic, and no operation may decompress more than the partition holds.
func FuzzApply(f *testing.F) {
	f.Add(uint8(payload.OpReplaceBz), uint64(0), uint64(1), uint64(0), uint64(0), bz2(f, make([]byte, 4096)))
	f.Add(uint8(payload.OpMove), uint64(1), uint64(2), uint64(0), uint64(2), []byte(nil))
	f.Add(uint8(payload.OpBsdiff), uint64(0), uint64(1), uint64(2), uint64(1), []byte("BSDIFF40"))
	f.Add(uint8(payload.OpReplace), uint64(7), uint64(1<<52), uint64(0), uint64(0), []byte("x"))
	f.Fuzz(func(t *testing.T, typ uint8, ds, dn, ss, sn uint64, data []byte) {
		op := &payload.Operation{Type: payload.OperationType(typ % 4).Enum(), DstExtents: []*payload.Extent{ext(ds, dn)}}
		if sn > 0 {
			op.SrcExtents = []*payload.Extent{ext(ss, sn)}
		}
		m := oneOp(8, payload.OpReplace)
		m.PartitionOperations[0] = op
		var blob []byte
		if len(data) > 0 {
			blob = data
		}
		b, err := assemble(m, [][]byte{blob})
		if err != nil {
			return
		}
		pr, err := payload.NewReader(bytes.NewReader(b), nil)
		if err != nil {
			return
		}
		var c apply.Counters
		_, _ = apply.Simulate(context.Background(), pr, apply.Sources{TempDir: t.TempDir(), Counters: &c})
		if n := c.Decompressed.Load(); n > 8*payload.BlockSize {
			t.Fatalf("decompressed %d bytes for an 8-block partition", n)
		}
	})
}

// MOVE and BSDIFF check their extents against the partition before they
// allocate or patch: a 256 MiB source beyond an 8 KiB partition, or a
// destination outside it, is refused as such.
func TestMoveAndBsdiffExtentsCheckedFirst(t *testing.T) {
	move := oneOp(2, payload.OpMove, ext(0, 65536))
	move.PartitionOperations[0].SrcExtents = []*payload.Extent{ext(1<<40, 65536)}
	bsd := oneOp(2, payload.OpBsdiff, ext(1<<40, 1))
	bsd.PartitionOperations[0].SrcExtents = []*payload.Extent{ext(0, 1)}
	bsd.PartitionOperations[0].SrcLength = proto.Uint64(payload.BlockSize)
	bsd.PartitionOperations[0].DstLength = proto.Uint64(payload.BlockSize)
	for name, b := range map[string][]byte{
		"move":   craft(t, move, [][]byte{nil}),
		"bsdiff": craft(t, bsd, [][]byte{[]byte("BSDIFF40 not a patch")}),
	} {
		err := simulate(t, b, context.Background(), nil)
		if !errors.Is(err, apply.ErrApply) || !(strings.Contains(err.Error(), "past the end") || strings.Contains(err.Error(), "holds")) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

// Finding 3 through the applier: a BSDIFF operation whose control stream
// is a million idle triples (a few KB compressed) is stopped after a few.
func TestIdleTriplesThroughApply(t *testing.T) {
	ctrl, empty := bz2(t, make([]byte, 24<<20)), bz2(t, nil)
	hdr := make([]byte, 32)
	copy(hdr, "BSDIFF40")
	binary.LittleEndian.PutUint64(hdr[8:], uint64(len(ctrl)))
	binary.LittleEndian.PutUint64(hdr[16:], uint64(len(empty)))
	binary.LittleEndian.PutUint64(hdr[24:], payload.BlockSize)
	patch := append(append(append(hdr, ctrl...), empty...), empty...)
	m := oneOp(2, payload.OpBsdiff, ext(1, 1))
	m.PartitionOperations[0].SrcExtents = []*payload.Extent{ext(0, 1)}
	m.PartitionOperations[0].SrcLength = proto.Uint64(payload.BlockSize)
	m.PartitionOperations[0].DstLength = proto.Uint64(payload.BlockSize)
	zeros := sha256.Sum256(make([]byte, 2*payload.BlockSize))
	m.OldPartitionInfo = &payload.InstallInfo{Size: proto.Uint64(2 * payload.BlockSize), Hash: zeros[:]} // a delta: block 0 is the running system's
	b := craft(t, m, [][]byte{patch})
	testutil.SaveCrafted(t, "3-idle-triples.payload", b)
	err := simulateOn(t, b, make([]byte, 2*payload.BlockSize))
	if !errors.Is(err, apply.ErrApply) || augen.StricterRule(err) != "bzip2-control" {
		t.Fatalf("got %v", err)
	}
}

// Class 10: a small payload of data-less MOVEs that each move the whole
// partition (100,000 of them: a 1.6 MB manifest) would keep the applier
// busy for hours; the work all operations declare is checked before any
// runs.
func TestWorkBoundedBeforeApplying(t *testing.T) {
	m, blobs := wholeMoves(100000)
	b := craft(t, m, blobs)
	var c apply.Counters
	err := simulate(t, b, context.Background(), &c)
	if augen.StricterRule(err) != "work-bound" {
		t.Fatalf("got %v", err)
	}
	if n := c.Operations.Load(); n != 0 {
		t.Fatalf("%d operations ran", n)
	}
}

// A 15 MB manifest of 700,000 MOVEs would take over 500 MiB once parsed:
// its operations are counted on its bytes and it is refused before it is
// parsed, having allocated little more than the manifest itself.
func TestManifestMemoryBoundedBeforeParsing(t *testing.T) {
	m, blobs := wholeMoves(700000)
	b := craft(t, m, blobs)
	testutil.SaveCrafted(t, "700k-moves.payload", b)
	m, blobs = nil, nil
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := payload.NewReader(bytes.NewReader(b), nil)
	runtime.ReadMemStats(&after)
	if augen.StricterRule(err) != "limits" {
		t.Fatalf("got %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 3*uint64(len(b))+(1<<20) {
		t.Fatalf("allocated %d bytes for a %d-byte payload before refusing it", n, len(b))
	}
}

// A payload of a few KB whose three BSDIFF operations each rebuild 256 MiB
// (one control triple adding 256 MiB of compressed zeros to the old data)
// once made the verifier hold each operation's output, and its old data,
// whole in memory (over 1 GiB peak). Each output now goes through a spool
// (a temporary file past 8 MiB) and the old data is read a chunk at a
// time: the whole apply allocates a small part of one operation's size.
// scripts/hostile-inputs.sh measures augen's peak RSS on it.
func TestBigOperationsInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("rebuilds 768 MiB")
	}
	const n = 256 << 20
	blocks := uint64(3 * n / payload.BlockSize)
	patch := bsdiffPatch(t, n, [3]int64{n, 0, 0}, make([]byte, n), nil)
	zeros := sha256Zeros(3 * n)
	m := &payload.Manifest{
		BlockSize:        proto.Uint32(payload.BlockSize),
		OldPartitionInfo: &payload.InstallInfo{Size: proto.Uint64(3 * n), Hash: zeros},
		NewPartitionInfo: &payload.InstallInfo{Size: proto.Uint64(3 * n), Hash: zeros},
	}
	var blobs [][]byte
	for i := uint64(0); i < 3; i++ {
		third := blocks / 3
		m.PartitionOperations = append(m.PartitionOperations, &payload.Operation{Type: payload.OpBsdiff.Enum(),
			SrcExtents: []*payload.Extent{ext(i*third, third)}, SrcLength: proto.Uint64(n),
			DstExtents: []*payload.Extent{ext(i*third, third)}, DstLength: proto.Uint64(n)})
		blobs = append(blobs, patch)
	}
	b := craft(t, m, blobs)
	testutil.SaveCrafted(t, "big-bsdiffs.payload", b)
	dir := t.TempDir()
	old := dir + "/old"
	if err := os.WriteFile(old, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(old, 3*n); err != nil {
		t.Fatal(err)
	}
	pr, err := payload.NewReader(bytes.NewReader(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The heap in use, sampled while it runs, with a collector that keeps
	// it close to what is live.
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	runtime.GC()
	var peak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	_, err = apply.Simulate(context.Background(), pr, apply.Sources{Partition: old, TempDir: dir})
	close(done)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	// Before, each operation's output and old data were held whole: over
	// 512 MiB live at once.
	t.Logf("peak heap in use: %d MiB", peak.Load()>>20)
	if p := peak.Load(); p > 160<<20 {
		t.Fatalf("the heap in use reached %d MiB applying three 256 MiB operations", p>>20)
	}
}

// bsdiffPatch is a BSDIFF40 patch of one control triple.
func bsdiffPatch(t *testing.T, newSize int64, triple [3]int64, diff, extra []byte) []byte {
	t.Helper()
	var ctrl [24]byte
	for i, v := range triple {
		binary.LittleEndian.PutUint64(ctrl[8*i:], uint64(v))
	}
	c, d, e := bz2(t, ctrl[:]), bz2(t, diff), bz2(t, extra)
	hdr := make([]byte, 32)
	copy(hdr, "BSDIFF40")
	binary.LittleEndian.PutUint64(hdr[8:], uint64(len(c)))
	binary.LittleEndian.PutUint64(hdr[16:], uint64(len(d)))
	binary.LittleEndian.PutUint64(hdr[24:], uint64(newSize))
	return append(append(append(hdr, c...), d...), e...)
}

func sha256Zeros(n int) []byte {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for ; n > 0; n -= len(buf) {
		h.Write(buf[:min(n, len(buf))])
	}
	return h.Sum(nil)
}

// wholeMoves is a full payload of one REPLACE of a 1 MiB partition
// followed by n data-less MOVEs of the whole partition onto itself.
func wholeMoves(n int) (*payload.Manifest, [][]byte) {
	m := oneOp(256, payload.OpReplace, ext(0, 256))
	move := &payload.Operation{Type: payload.OpMove.Enum(), SrcExtents: []*payload.Extent{ext(0, 256)}, DstExtents: []*payload.Extent{ext(0, 256)}}
	blobs := [][]byte{make([]byte, 256*payload.BlockSize)}
	for range n {
		m.PartitionOperations = append(m.PartitionOperations, move)
		blobs = append(blobs, nil)
	}
	return m, blobs
}
