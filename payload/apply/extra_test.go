package apply_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/apply"
	"github.com/augen-project/augen/payload/generate"
	"github.com/augen-project/augen/payload/internal/crafted"
)

// extraPayload assembles an unsigned extra of ops whose new hash is that
// of image.
func extraPayload(t *testing.T, image []byte, ops []*payload.Operation, blobs [][]byte) []byte {
	t.Helper()
	sum := sha256.Sum256(image)
	c := &crafted.Case{M: &payload.Manifest{
		BlockSize:           proto.Uint32(payload.BlockSize),
		PartitionOperations: ops,
		NewPartitionInfo:    &payload.InstallInfo{Size: proto.Uint64(uint64(len(image))), Hash: sum[:]},
	}, Blobs: blobs}
	b, err := c.Payload()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func simulateExtra(t *testing.T, b []byte) (apply.Rebuilt, error) {
	t.Helper()
	pr, err := payload.NewReader(bytes.NewReader(b), nil)
	if err != nil {
		return apply.Rebuilt{}, err
	}
	return apply.SimulateExtra(context.Background(), pr, apply.ExtraOptions{TempDir: t.TempDir(), Unsigned: true})
}

func rop(typ payload.OperationType, dst ...*payload.Extent) *payload.Operation {
	return &payload.Operation{Type: typ.Enum(), DstExtents: dst}
}

// Class 9: extras are installed by ue-rs (update-format-crau
// get_data_blobs), which takes one destination extent per operation, no
// MOVE, writes every type but REPLACE_BZ as raw data and neither pads nor
// extends the file. Each case here passed update_engine's rules before.
func TestExtraByUeRsRules(t *testing.T) {
	img := make([]byte, 3*payload.BlockSize)
	for i := range img {
		img[i] = byte(i * 13)
	}
	for _, tc := range []struct {
		name  string
		image []byte
		ops   []*payload.Operation
		blobs [][]byte
		want  string // "" accepted, else part of the error
	}{
		{"one extent each", img, []*payload.Operation{rop(payload.OpReplace, ext(0, 2)), rop(payload.OpReplaceBz, ext(2, 1))}, [][]byte{img[:8192], crafted.BZ(img[8192:])}, ""},
		{"two extents", img, []*payload.Operation{rop(payload.OpReplace, ext(0, 1), ext(1, 2))}, [][]byte{img}, "exactly one"},
		{"a MOVE", img, []*payload.Operation{rop(payload.OpReplace, ext(0, 3)), {Type: payload.OpMove.Enum(), SrcExtents: []*payload.Extent{ext(0, 1)}, DstExtents: []*payload.Extent{ext(2, 1)}}},
			[][]byte{img, nil}, "cannot apply a MOVE"},
		// update_engine rules would take the last block from the running
		// system (or zeros); ue-rs's file simply ends after two blocks.
		{"unwritten trailing block", append(append([]byte{}, img[:8192]...), make([]byte, 4096)...), []*payload.Operation{rop(payload.OpReplace, ext(0, 2))}, [][]byte{img[:8192]}, "has SHA-256"},
		// Not padded: a short image is written as it is.
		{"short image", img[:5000], []*payload.Operation{rop(payload.OpReplaceBz, ext(0, 256))}, [][]byte{crafted.BZ(img[:5000])}, ""},
		{"a patch as data", img, []*payload.Operation{{Type: payload.OpBsdiff.Enum(), SrcExtents: []*payload.Extent{ext(0, 1)}, SrcLength: proto.Uint64(4096), DstExtents: []*payload.Extent{ext(0, 3)}, DstLength: proto.Uint64(3 * 4096)}},
			[][]byte{crafted.Patch(3*4096, [][3]int64{{0, 3 * 4096, 0}}, nil, img)}, "BSDIFF's patch"},
		{"into a hole", img, []*payload.Operation{rop(payload.OpReplace, crafted.Hole(3))}, [][]byte{img}, "extra-hole"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := simulateExtra(t, extraPayload(t, tc.image, tc.ops, tc.blobs))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r.Size != uint64(len(tc.image)) || r.SHA256 != sha256.Sum256(tc.image) {
					t.Fatalf("rebuilt %d bytes %x", r.Size, r.SHA256)
				}
				return
			}
			if err == nil || !errors.Is(err, augen.ErrRejected) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// An extra built with generate's Extra mode installs by ue-rs's rules to
// exactly its image, whatever the image's size; update_engine's rules
// would refuse it (its size is not whole blocks).
func TestBuildExtra(t *testing.T) {
	for _, n := range []int{1, 4096, 10000, 3<<20 + 17} {
		img := make([]byte, n)
		for i := range img {
			img[i] = byte(i*7) ^ byte(i>>12)
		}
		var out bytes.Buffer
		opts := generate.BuildOptions{FullOptions: generate.FullOptions{Image: generate.Input{R: bytes.NewReader(img), Size: int64(n)}, Extra: true}, TempDir: t.TempDir()}
		if _, err := generate.BuildFull(context.Background(), &out, opts); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		r, err := simulateExtra(t, out.Bytes())
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if r.Size != uint64(n) || r.SHA256 != sha256.Sum256(img) {
			t.Fatalf("%d bytes: rebuilt %d bytes", n, r.Size)
		}
	}
	// A kernel has no place in an extra.
	opts := generate.BuildOptions{FullOptions: generate.FullOptions{Image: generate.Input{R: bytes.NewReader(make([]byte, 4096)), Size: 4096},
		Kernel: generate.Input{R: bytes.NewReader([]byte("k")), Size: 1}, Extra: true}}
	if _, err := generate.BuildFull(context.Background(), &bytes.Buffer{}, opts); err == nil {
		t.Fatal("an extra with a kernel was built")
	}
}
