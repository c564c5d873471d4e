package sais

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

// BenchmarkSortCorpus sorts, with the transform, the first 900,000 bytes
// (a bzip2 block's size) of each 1 MiB chunk of $AUGEN_CORPUS/usr-new.img
// that is not all zeros: the bzip2 encoder's sort on real data, per core.
//
//	AUGEN_CORPUS=/path/to/corpus go test ./internal/sais -run '^$' -bench SortCorpus -cpu 1
func BenchmarkSortCorpus(b *testing.B) {
	img, err := os.ReadFile(filepath.Join(testutil.Corpus(b), "usr-new.img"))
	if err != nil {
		b.Fatal(err)
	}
	const size = 900000
	var blocks [][]byte
	zero := make([]byte, size)
	for off := 0; off+size <= len(img); off += 1 << 20 {
		if c := img[off : off+size]; !bytes.Equal(c, zero) {
			blocks = append(blocks, c)
		}
	}
	if len(blocks) == 0 {
		b.Skip("no block with data")
	}
	var r Sorter
	sa, bwt := make([]int32, size), make([]byte, size)
	b.SetBytes(int64(len(blocks) * size))
	for b.Loop() {
		for _, c := range blocks {
			r.Sort(c, sa, bwt, 0)
		}
	}
}
