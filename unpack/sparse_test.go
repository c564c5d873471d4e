package unpack

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestCopySparse writes stretches of non-zero and zero blocks, across the
// 1 MiB chunks and with a partial last block, and reads the file back.
func TestCopySparse(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, size := range []int{1, 4095, 4096, 4097, 3<<20 + 1234} {
		src := make([]byte, size)
		for off := 0; off < size; off += 4096 {
			if r.IntN(3) == 0 {
				continue // a zero block
			}
			blk := src[off:min(off+4096, size)]
			for i := range blk {
				blk[i] = byte(r.Uint32())
			}
		}
		f, err := os.Create(filepath.Join(t.TempDir(), "out"))
		if err != nil {
			t.Fatal(err)
		}
		s := &stream{r: bytes.NewReader(src), ctx: context.Background(), progress: func(int64) {}}
		if err := s.copySparse(f, nil, int64(size)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(f.Name())
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, src) {
			t.Fatalf("%d bytes: the file differs from what was copied", size)
		}
	}
}
