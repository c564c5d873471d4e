package pbzip2

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/augen-project/augen/internal/testutil"
)

// BenchmarkCorpusImage decodes $AUGEN_CORPUS/image-new.bin.bz2 whole and,
// in the same run, has `lbzip2 -d -n 2` and `bzip2 -d` do the same.
//
//	AUGEN_CORPUS=/path/to/corpus go test ./internal/pbzip2 -run '^$' -bench CorpusImage -benchtime 1x
func BenchmarkCorpusImage(b *testing.B) {
	dir := testutil.Corpus(b)
	path := filepath.Join(dir, "image-new.bin.bz2")
	tool := func(name string, args ...string) float64 {
		if _, err := exec.LookPath(name); err != nil {
			return 0
		}
		start := time.Now()
		cmd := exec.Command(name, append(args, path)...) // output discarded
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start).Seconds()
	}
	lb := tool("lbzip2", "-d", "-n", "2", "-c")
	bz := tool("bzip2", "-d", "-c")
	var out int64
	b.ResetTimer()
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		z := NewReader(f, 0)
		if out, err = io.Copy(io.Discard, z); err != nil {
			b.Fatal(err)
		}
		z.Close()
		f.Close()
	}
	secs := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(out)/secs/1e6, "MB/s-out")
	if lb > 0 {
		b.ReportMetric(secs/lb, "x-lbzip2-time")
	}
	if bz > 0 {
		b.ReportMetric(secs/bz, "x-bzip2-time")
	}
}

// BenchmarkDecodeOne decodes 1 MiB chunks of $AUGEN_CORPUS/usr-new.img
// compressed by `bzip2 -9` (a full payload's REPLACE_BZ blobs) on one
// goroutine.
//
//	AUGEN_CORPUS=/path/to/corpus go test ./internal/pbzip2 -run '^$' -bench DecodeOne
func BenchmarkDecodeOne(b *testing.B) {
	dir := testutil.Corpus(b)
	f, err := os.Open(filepath.Join(dir, "usr-new.img"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var blobs [][]byte
	for i := int64(0); i < 16; i++ {
		chunk := make([]byte, 1<<20)
		if _, err := f.ReadAt(chunk, (i*7+3)<<20); err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command("bzip2", "-9", "-c")
		cmd.Stdin = bytes.NewReader(chunk)
		out, err := cmd.Output()
		if err != nil {
			b.Fatal(err)
		}
		blobs = append(blobs, out)
	}
	b.SetBytes(16 << 20)
	for b.Loop() {
		for _, blob := range blobs {
			if _, err := DecodeOne(blob, 1<<20); err != nil {
				b.Fatal(err)
			}
		}
	}
}
