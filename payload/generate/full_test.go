package generate_test

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/apply"
	"github.com/augen-project/augen/payload/generate"
)

const vectors = "../../testdata/vectors/"

func read(t testing.TB, p string) []byte { return testutil.Read(t, p) }

func unbz(t testing.TB, p string) []byte { return testutil.Unbzip2(t, p) }

func key(t testing.TB, name string) crypto.Signer { return testutil.Key(t, name) }

func build(t testing.TB, img, kernel []byte, workers int, keys ...crypto.Signer) []byte {
	t.Helper()
	opts := generate.BuildOptions{}
	opts.Workers = workers
	opts.Image = generate.Input{R: bytes.NewReader(img), Size: int64(len(img))}
	if kernel != nil {
		opts.Kernel = generate.Input{R: bytes.NewReader(kernel), Size: int64(len(kernel))}
	}
	for range keys {
		opts.SignatureSizes = append(opts.SignatureSizes, 256)
	}
	if len(keys) > 0 {
		opts.Sign = payload.SignWith(keys)
	}
	var out bytes.Buffer
	if _, err := generate.BuildFull(context.Background(), &out, opts); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func manifestOf(t testing.TB, b []byte) *payload.Manifest {
	t.Helper()
	pr, err := payload.NewReader(bytes.NewReader(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	return pr.Manifest()
}

// The same inputs give the same bytes whatever the number of workers.
func TestDeterministicAcrossWorkers(t *testing.T) {
	img := unbz(t, vectors+"usr-new.bin.bz2")
	kernel := read(t, vectors+"vmlinuz-new")
	a := key(t, "a")
	want := build(t, img, kernel, 1, a)
	counts := []int{2, 3, 8}
	if testutil.Race {
		counts = []int{3}
	}
	for _, w := range counts {
		if got := build(t, img, kernel, w, a); !bytes.Equal(got, want) {
			t.Fatalf("%d workers: output differs from 1 worker", w)
		}
	}
	// The default (one worker per core) with one core and with all.
	for _, procs := range []int{1, runtime.NumCPU()} {
		old := runtime.GOMAXPROCS(procs)
		got := build(t, img, kernel, 0, a)
		runtime.GOMAXPROCS(old)
		if !bytes.Equal(got, want) {
			t.Fatalf("GOMAXPROCS=%d: output differs", procs)
		}
	}
}

// augen's full payloads are delta_generator's, byte for byte: the same
// manifest, the same bzip2 blobs (libbzip2's bytes), the same signature.
func TestReproducesDeltaGenerator(t *testing.T) {
	img := unbz(t, vectors+"usr-new.bin.bz2")
	kernel := read(t, vectors+"vmlinuz-new")
	for _, tc := range []struct {
		vector string
		kernel []byte
		keys   []crypto.Signer
	}{
		{"full-signed.bin", kernel, []crypto.Signer{key(t, "a")}},
		{"full-nokernel-signed.bin", nil, []crypto.Signer{key(t, "a")}},
		{"full-unsigned.bin", kernel, nil},
	} {
		t.Run(tc.vector, func(t *testing.T) {
			workerCounts := []int{1, 3}
			if testutil.Race {
				workerCounts = []int{3}
			}
			for _, workers := range workerCounts {
				got := build(t, img, tc.kernel, workers, tc.keys...)
				want := read(t, vectors+tc.vector)
				if !bytes.Equal(got, want) {
					at := 0
					for at < min(len(got), len(want)) && got[at] == want[at] {
						at++
					}
					t.Fatalf("%d workers: %d bytes, delta_generator's %d; first difference at byte %d", workers, len(got), len(want), at)
				}
			}
		})
	}
}

func TestReplaceWhenCompressionDoesNotHelp(t *testing.T) {
	img := make([]byte, 2*generate.ChunkSize+payload.BlockSize)
	rand.NewChaCha8([32]byte{1}).Read(img[generate.ChunkSize : 2*generate.ChunkSize]) // chunk 1: random
	m := manifestOf(t, build(t, img, nil, 0))
	var types []string
	for _, op := range m.PartitionOperations {
		types = append(types, op.GetType().String())
		if n := op.DstExtents[0].GetNumBlocks(); n != 256 {
			t.Errorf("extent of %d blocks, delta_generator writes 256 always", n)
		}
	}
	if got := strings.Join(types, " "); got != "REPLACE_BZ REPLACE REPLACE_BZ" {
		t.Fatalf("operation types %s", got)
	}
	if m.PartitionOperations[1].GetDataLength() != generate.ChunkSize {
		t.Fatal("REPLACE does not carry the raw chunk")
	}
}

func TestInputErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts generate.FullOptions
		want string
	}{
		{"unaligned", generate.FullOptions{Image: generate.Input{R: bytes.NewReader(make([]byte, 5000)), Size: 5000}}, "multiple of 4096"},
		{"empty image", generate.FullOptions{Image: generate.Input{R: bytes.NewReader(nil), Size: 0}}, "multiple of 4096"},
		{"short read", generate.FullOptions{Image: generate.Input{R: bytes.NewReader(make([]byte, 4096)), Size: 8192}}, "input ended after 4096 of 8192"},
		{"long read", generate.FullOptions{Image: generate.Input{R: bytes.NewReader(make([]byte, 8192)), Size: 4096}}, "longer than its size"},
		{"empty kernel", generate.FullOptions{
			Image:  generate.Input{R: bytes.NewReader(make([]byte, 4096)), Size: 4096},
			Kernel: generate.Input{R: bytes.NewReader(nil), Size: 0},
		}, "kernel is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Blobs = io.Discard
			_, err := generate.Full(context.Background(), tc.opts)
			if err == nil || !errors.Is(err, generate.ErrInput) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	img := make([]byte, 8*generate.ChunkSize)
	_, err := generate.Full(ctx, generate.FullOptions{Image: generate.Input{R: bytes.NewReader(img), Size: int64(len(img))}, Blobs: io.Discard})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// testImage makes a deterministic image that looks like a USR partition:
// binary-like runs that compress a little, text that compresses well,
// incompressible stretches and free space.
func testImage(size int) []byte {
	img := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{2})
	x := uint64(0x9E3779B97F4A7C15)
	next := func() uint64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
	words := []string{"usr", "lib", "bin", "systemd", "flatcar", "kernel", "module", "config", "docker", "containerd"}
	for off := 0; off < size; off += 64 << 10 {
		seg := img[off:min(off+64<<10, size)]
		switch next() % 4 {
		case 0: // random
			rng.Read(seg)
		case 1: // text
			p := 0
			for p < len(seg) {
				p += copy(seg[p:], words[next()%uint64(len(words))]+" ")
			}
		case 2: // structured binary: small values
			for i := range seg {
				seg[i] = byte(next() % 16)
			}
		case 3: // free space stays zero
		}
	}
	return img
}

// A payload of a 64 MiB image and a 5 MB kernel is accepted by the
// independent checker (testdata/checker, which shares no code with augen)
// and by the applier, and rebuilds both exactly.
func TestLargePayloadIndependentlyChecked(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB build skipped in -short mode")
	}
	testutil.RequireTools(t, "python3", "openssl")
	dir := t.TempDir()
	img := testImage(64 << 20)
	kernel := testImage(5_000_000 + 123)
	imgPath, kernelPath, out := filepath.Join(dir, "usr.bin"), filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "update.gz")
	if err := os.WriteFile(imgPath, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kernelPath, kernel, 0o644); err != nil {
		t.Fatal(err)
	}
	p := build(t, img, kernel, 0, key(t, "b"), key(t, "a"))
	if err := os.WriteFile(out, p, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", "../../testdata/checker/crau_check.py", out,
		"--pubkey", vectors+"TEST-ONLY-key-a.pub.pem", "--image", imgPath, "--kernel", kernelPath)
	if o, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(o)) != "OK" {
		t.Fatalf("independent checker: %v\n%s", err, o)
	}
	pr, err := payload.NewReader(bytes.NewReader(p), nil)
	if err != nil {
		t.Fatal(err)
	}
	rebuilt, err := apply.Simulate(context.Background(), pr, apply.Sources{TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(rebuilt) != 2 || rebuilt[0].Size != uint64(len(img)) || rebuilt[1].Size != uint64(len(kernel)) {
		t.Fatalf("rebuilt %+v", rebuilt)
	}
}
