package generate_test

import (
	"bytes"
	"context"
	"crypto"
	"os"
	"path/filepath"
	"testing"

	"github.com/augen-project/augen/internal/crafted"
	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/generate"
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
		})
	}
}
