package apply_test

import (
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"strings"

	"google.golang.org/protobuf/proto"

	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/augen-project/augen/payload/generate"

	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/apply"
)

const vectors = "../../testdata/vectors/"

// unbz writes the decompressed test vector name (.bz2) to a temp dir.
func unbz(t *testing.T, name string) string {
	t.Helper()
	in, err := os.Open(vectors + name + ".bz2")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	p := filepath.Join(t.TempDir(), name)
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, bzip2.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	out.Close()
	return p
}

func sha(t *testing.T, path string) [32]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestRebuildsVectors applies every payload made by the real generator and
// checks it rebuilds exactly usr-new.bin and vmlinuz-new.
func TestRebuildsVectors(t *testing.T) {
	oldUSR := unbz(t, "usr-old.bin")
	newUSR := unbz(t, "usr-new.bin")
	for _, tc := range []struct {
		name   string
		kernel bool
	}{
		{"full-signed.bin", true},
		{"full-nokernel-signed.bin", false},
		{"full-2sig-signed.bin", true},
		{"full-unsigned.bin", true},
		{"delta-signed.bin", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(vectors + tc.name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			pr, err := payload.NewReader(f, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := apply.Simulate(context.Background(), pr, apply.Sources{Partition: oldUSR, Kernel: vectors + "vmlinuz-old", TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			want := []apply.Rebuilt{{Name: "partition", SHA256: sha(t, newUSR)}}
			if tc.kernel {
				want = append(want, apply.Rebuilt{Name: "KERNEL", SHA256: sha(t, vectors+"vmlinuz-new")})
			}
			if len(got) != len(want) {
				t.Fatalf("rebuilt %d targets, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].Name != want[i].Name || got[i].SHA256 != want[i].SHA256 {
					t.Errorf("target %d: got %s %x, want %s %x", i, got[i].Name, got[i].SHA256, want[i].Name, want[i].SHA256)
				}
			}
		})
	}
}

// delta_generator gives a short last chunk an extent of 256 blocks; only
// the data written must fit the partition.
func TestShortImageWithWholeChunkExtent(t *testing.T) {
	img := append(bytes.Repeat([]byte{0xff}, 4096), make([]byte, 4096)...)
	var out bytes.Buffer
	opts := generate.BuildOptions{}
	opts.Image = generate.Input{R: bytes.NewReader(img), Size: int64(len(img))}
	if _, err := generate.BuildFull(context.Background(), &out, opts); err != nil {
		t.Fatal(err)
	}
	pr, err := payload.NewReader(&out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := pr.Manifest().PartitionOperations[0].DstExtents[0].GetNumBlocks(); n != 256 {
		t.Fatalf("extent of %d blocks", n)
	}
	got, err := apply.Simulate(context.Background(), pr, apply.Sources{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].SHA256 != sha256.Sum256(img) {
		t.Fatal("rebuilt image differs")
	}
}

// Operations that reach past the partition, including with block numbers
// whose byte offsets would overflow, are refused.
func TestWritesPastThePartition(t *testing.T) {
	for _, start := range []uint64{2, 1 << 52, 1<<60 - 2} {
		img := make([]byte, 8192)
		var out bytes.Buffer
		opts := generate.BuildOptions{}
		opts.Image = generate.Input{R: bytes.NewReader(img), Size: int64(len(img))}
		if _, err := generate.BuildFull(context.Background(), &out, opts); err != nil {
			t.Fatal(err)
		}
		b := out.Bytes()
		pr, _ := payload.NewReader(bytes.NewReader(b), nil)
		m := proto.Clone(pr.Manifest()).(*payload.Manifest)
		m.PartitionOperations[0].DstExtents[0].StartBlock = proto.Uint64(start)
		m.PartitionOperations[0].DstExtents[0].NumBlocks = proto.Uint64(2)
		var re bytes.Buffer
		if _, err := payload.Assemble(&re, m, bytes.NewReader(b[pr.MetadataSize():]), nil); err != nil {
			t.Fatal(err)
		}
		pr2, err := payload.NewReader(&re, nil)
		if err != nil {
			t.Fatalf("start %d: %v", start, err)
		}
		_, err = apply.Simulate(context.Background(), pr2, apply.Sources{TempDir: t.TempDir()})
		if !errors.Is(err, apply.ErrApply) || !strings.Contains(err.Error(), "past the end") {
			t.Fatalf("start %d: got %v", start, err)
		}
	}
}
