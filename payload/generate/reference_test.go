package generate_test

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/apply"
	"github.com/augen-project/augen/payload/generate"
	"github.com/augen-project/augen/payload/internal/crafted"
)

// augen's own payloads, applied by the real client's code
// (delta_generator-apply, from AUGEN_UE_TOOLS: scripts/test-reference.sh):
// full and delta, with kernels, for the test vectors' images and for small
// ext2, ext4 and btrfs release pairs, must rebuild the new image and kernel
// byte for byte. A full payload is applied over the old release, as a
// machine starts a full update from its running partition.
func TestOwnPayloadsInClient(t *testing.T) {
	bin := os.Getenv("AUGEN_UE_TOOLS")
	if bin == "" {
		t.Skip("AUGEN_UE_TOOLS is not set: run scripts/test-reference.sh DIR")
	}
	kOld := testutil.Read(t, vectors+"vmlinuz-old")
	kNew := testutil.Read(t, vectors+"vmlinuz-new")
	pairs := map[string][2][]byte{"vectors": {testutil.Unbzip2(t, vectors+"usr-old.bin.bz2"), testutil.Unbzip2(t, vectors+"usr-new.bin.bz2")}}
	if !testing.Short() {
		for _, fsType := range []string{"ext2", "ext4", "btrfs"} {
			var imgs [2][]byte
			for i, isNew := range []bool{false, true} {
				src := t.TempDir()
				release(t, src, isNew)
				imgs[i] = testutil.MakeFS(t, fsType, src)
			}
			pairs[fsType] = imgs
		}
	}
	sign := payload.SignWith([]crypto.Signer{key(t, "a")})
	for name, pair := range pairs {
		old, new := pair[0], pair[1]
		t.Run(name, func(t *testing.T) {
			var full, delta bytes.Buffer
			fo := generate.BuildOptions{SignatureSizes: []int{256}, Sign: sign, TempDir: t.TempDir()}
			fo.Image = generate.Input{R: bytes.NewReader(new), Size: int64(len(new))}
			fo.Kernel = generate.Input{R: bytes.NewReader(kNew), Size: int64(len(kNew))}
			if _, err := generate.BuildFull(context.Background(), &full, fo); err != nil {
				t.Fatal(err)
			}
			do := generate.DeltaBuildOptions{SignatureSizes: []int{256}, Sign: sign}
			do.Old = generate.File{R: bytes.NewReader(old), Size: int64(len(old))}
			do.New = generate.File{R: bytes.NewReader(new), Size: int64(len(new))}
			do.OldKernel = generate.File{R: bytes.NewReader(kOld), Size: int64(len(kOld))}
			do.Kernel = generate.File{R: bytes.NewReader(kNew), Size: int64(len(kNew))}
			if _, err := generate.BuildDelta(context.Background(), &delta, do); err != nil {
				t.Fatal(err)
			}
			for kind, p := range map[string][]byte{"full": full.Bytes(), "delta": delta.Bytes()} {
				part, kernel, err := crafted.ClientApply(context.Background(), bin, p, old, kOld, int64(len(new)), filepath.Join(t.TempDir(), kind))
				if err != nil {
					t.Fatalf("%s: %v", kind, err)
				}
				if !bytes.Equal(part, new) || !bytes.Equal(kernel, kNew) {
					t.Fatalf("%s: the client rebuilt another partition or kernel", kind)
				}
				t.Logf("%s %s: %d bytes, applied byte-exactly by the client", name, kind, len(p))
			}
			// The machines with partitions twice the image (Flatcar's 2 GiB
			// partitions holding the 1 GiB image, the rest zeros): a delta
			// built for them applies there byte for byte, and neither delta
			// applies on the other machine, for the client and for augen.
			padded := append(append([]byte{}, old...), make([]byte, len(old))...)
			var delta2 bytes.Buffer
			do.PartitionSize = int64(len(padded))
			if _, err := generate.BuildDelta(context.Background(), &delta2, do); err != nil {
				t.Fatal(err)
			}
			part, kernel, err := crafted.ClientApply(context.Background(), bin, delta2.Bytes(), padded, kOld, int64(len(new)), filepath.Join(t.TempDir(), "delta2"))
			if err != nil {
				t.Fatalf("delta for the larger partition, on it: %v", err)
			}
			if !bytes.Equal(part, new) || !bytes.Equal(kernel, kNew) {
				t.Fatalf("delta for the larger partition: the client rebuilt another partition or kernel")
			}
			if r := simulate(t, delta2.Bytes(), padded, kOld, 0); r != nil {
				t.Fatalf("augen refuses the delta for the larger partition on it: %v", r)
			}
			t.Logf("%s delta for a %d-byte partition: %d bytes, applied byte-exactly by the client and augen", name, len(padded), delta2.Len())
			for _, m := range []struct {
				what    string
				payload []byte
				machine []byte
			}{{"the image-sized delta on the larger partition", delta.Bytes(), padded}, {"the larger partition's delta on an image-sized one", delta2.Bytes(), old}} {
				_, _, err := crafted.ClientApply(context.Background(), bin, m.payload, m.machine, kOld, int64(len(new)), filepath.Join(t.TempDir(), "cross"))
				if err == nil {
					t.Fatalf("%s: the client applied it", m.what)
				}
				if r := simulate(t, m.payload, m.machine, kOld, uint64(len(m.machine))); !errors.Is(r, apply.ErrMismatch) {
					t.Fatalf("%s: augen says %v, the client refuses it", m.what, r)
				}
			}
		})
	}
	// The reference generator's own delta, on a partition twice its image.
	oldVec := testutil.Unbzip2(t, vectors+"usr-old.bin.bz2")
	padded := append(append([]byte{}, oldVec...), make([]byte, len(oldVec))...)
	dg := testutil.Read(t, vectors+"delta-signed.bin")
	if _, _, err := crafted.ClientApply(context.Background(), bin, dg, padded, kOld, int64(len(oldVec)), filepath.Join(t.TempDir(), "dg")); err == nil {
		t.Fatal("the client applied delta_generator's delta on a partition twice its image")
	}
	if r := simulate(t, dg, padded, kOld, 0); !errors.Is(r, apply.ErrMismatch) {
		t.Fatalf("delta_generator's delta on a partition twice its image: augen says %v", r)
	}
}

// simulate runs augen's apply of payload b on a machine whose USR partition
// holds old (partition bytes: 0 means as the payload says) and whose
// kernel is kOld.
func simulate(t *testing.T, b, old, kOld []byte, partition uint64) error {
	t.Helper()
	dir := t.TempDir()
	op, ok := filepath.Join(dir, "old"), filepath.Join(dir, "kernel")
	if err := os.WriteFile(op, old, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ok, kOld, 0o600); err != nil {
		t.Fatal(err)
	}
	pr, err := payload.NewReader(bytes.NewReader(b), nil)
	if err != nil {
		return err
	}
	_, err = apply.Simulate(context.Background(), pr, apply.Sources{Partition: op, Kernel: ok, PartitionSize: partition, TempDir: dir})
	return err
}

// Flatcar's two kinds of machine, at their real sizes: a 1 GiB USR image
// in a 1 GiB partition (installed before 2025-09) and in a 2 GiB one (since).
// augen builds a delta for each; the client applies each byte for byte on
// its own machine and refuses it on the other, and augen agrees. The images
// are sparse files with a few MiB of content, so the test costs the
// hashing of the partitions (about a minute), not their disk space.
func TestFlatcarPartitionSizesInClient(t *testing.T) {
	bin := os.Getenv("AUGEN_UE_TOOLS")
	if bin == "" {
		t.Skip("AUGEN_UE_TOOLS is not set: run scripts/test-reference.sh DIR")
	}
	if testing.Short() {
		t.Skip("hashes several GiB")
	}
	const GiB = 1 << 30
	dir := t.TempDir()
	type region struct {
		off  int64
		data []byte
	}
	blob := func(seed byte, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*131+int(seed)*7) ^ byte(i>>9) ^ seed
		}
		return b
	}
	oldRegions := []region{{100 << 20, blob(1, 4<<20)}, {700 << 20, blob(2, 1<<20)}}
	newRegions := []region{{300 << 20, blob(1, 4<<20)}, {700 << 20, blob(3, 1<<20)}, {900 << 20, blob(4, 2<<20)}}
	// sparse writes a file of size bytes holding regions, zeros elsewhere.
	sparse := func(name string, size int64, regions []region) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		for _, r := range regions {
			if _, err := f.WriteAt(r.data, r.off); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	oldImg, newImg := sparse("old", GiB, oldRegions), sparse("new", GiB, newRegions)
	kOld, kNew := filepath.Join(dir, "k-old"), filepath.Join(dir, "k-new")
	if err := os.WriteFile(kOld, testutil.Read(t, vectors+"vmlinuz-old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kNew, testutil.Read(t, vectors+"vmlinuz-new"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := func(p string) generate.File {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		st, _ := f.Stat()
		return generate.File{R: f, Size: st.Size()}
	}
	sign := payload.SignWith([]crypto.Signer{key(t, "a")})
	deltas := map[int64]string{}
	for _, size := range []int64{GiB, 2 * GiB} {
		do := generate.DeltaBuildOptions{SignatureSizes: []int{256}, Sign: sign}
		do.Old, do.New, do.OldKernel, do.Kernel = open(oldImg), open(newImg), open(kOld), open(kNew)
		do.PartitionSize = size
		p := filepath.Join(dir, fmt.Sprintf("delta-%d", size>>30))
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := generate.BuildDelta(context.Background(), f, do); err != nil {
			t.Fatal(err)
		}
		f.Close()
		deltas[size] = p
	}
	want := testutil.Read(t, kNew)
	for built, p := range deltas {
		for _, machine := range []int64{GiB, 2 * GiB} {
			name := fmt.Sprintf("delta for %d GiB on a %d GiB partition", built>>30, machine>>30)
			part := sparse("machine", machine, oldRegions)
			kernel := filepath.Join(dir, "machine-kernel")
			if err := os.WriteFile(kernel, testutil.Read(t, kOld), 0o600); err != nil {
				t.Fatal(err)
			}
			b := testutil.Read(t, p)
			clientErr := crafted.RunClient(context.Background(), bin, b, part, kernel, filepath.Join(dir, "client"))
			pr, err := payload.NewReader(bytes.NewReader(b), nil)
			if err != nil {
				t.Fatal(err)
			}
			_, augenErr := apply.Simulate(context.Background(), pr, apply.Sources{Partition: oldImg, PartitionSize: uint64(machine), Kernel: kOld, TempDir: dir})
			if built != machine {
				if clientErr == nil || !errors.Is(augenErr, apply.ErrMismatch) {
					t.Fatalf("%s: client %v, augen %v; both must refuse it", name, clientErr, augenErr)
				}
				t.Logf("%s: refused by the client and by augen", name)
				continue
			}
			if clientErr != nil || augenErr != nil {
				t.Fatalf("%s: client %v, augen %v; both must apply it", name, clientErr, augenErr)
			}
			if !sameFile(t, part, newImg, GiB) || !bytes.Equal(testutil.Read(t, kernel), want) {
				t.Fatalf("%s: the client rebuilt another partition or kernel", name)
			}
			t.Logf("%s: applied byte-exactly by the client, and by augen", name)
		}
	}
}

// sameFile reports whether the first n bytes of a and b are equal.
func sameFile(t *testing.T, a, b string, n int64) bool {
	t.Helper()
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); off < n; off += int64(len(ba)) {
		if _, err := fa.ReadAt(ba, off); err != nil {
			t.Fatal(err)
		}
		if _, err := fb.ReadAt(bb, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ba, bb) {
			return false
		}
	}
	return true
}
