package payload_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/payload"
)

// A crafted manifest whose operations claim to write the whole image
// thousands of times is refused before any block is walked.
func TestSummarizeFilesBoundsWork(t *testing.T) {
	testutil.RequireTools(t, "mke2fs")
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), bytes.Repeat([]byte("x"), 8192), 0o644)
	img := filepath.Join(t.TempDir(), "fs.img")
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-d", src, img, "4M").CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v\n%s", err, out)
	}
	b := testutil.Read(t, img)
	n := uint64(len(b) / payload.BlockSize)
	whole := &payload.Operation{Type: payload.OpReplace.Enum(), DstExtents: []*payload.Extent{{StartBlock: proto.Uint64(0), NumBlocks: proto.Uint64(n)}}}
	m := &payload.Manifest{NewPartitionInfo: &payload.InstallInfo{Size: proto.Uint64(uint64(len(b)))}}
	for range 100000 {
		m.PartitionOperations = append(m.PartitionOperations, whole)
	}
	if _, err := payload.SummarizeFiles(m, bytes.NewReader(b), int64(len(b))); !errors.Is(err, payload.ErrInvalid) {
		t.Fatalf("got %v", err)
	}
	huge := &payload.Operation{Type: payload.OpReplace.Enum(), DstExtents: []*payload.Extent{{StartBlock: proto.Uint64(1), NumBlocks: proto.Uint64(^uint64(0))}}}
	m.PartitionOperations = []*payload.Operation{huge}
	if _, err := payload.SummarizeFiles(m, bytes.NewReader(b), int64(len(b))); !errors.Is(err, payload.ErrInvalid) {
		t.Fatalf("an extent of 2^64-1 blocks: %v", err)
	}
	m.PartitionOperations = []*payload.Operation{whole}
	s, err := payload.SummarizeFiles(m, bytes.NewReader(b), int64(len(b)))
	if err != nil || s.Replaced.Files != 1 {
		t.Fatalf("one REPLACE of the whole image: %+v, %v", s, err)
	}
}
