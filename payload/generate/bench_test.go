package generate_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/augen-project/augen/internal/testutil"

	"github.com/augen-project/augen/payload/generate"
)

// BenchmarkFullBuild builds a full payload of $AUGEN_CORPUS/usr-new.img
// (make one with scripts/make-corpus.sh 256 DIR) and, in the same run,
// compresses the same 1 MiB chunks with the `bzip2 -9` command one after
// another: the baseline the target ratio refers to.
//
//	AUGEN_CORPUS=/path/to/corpus go test ./payload/generate -run '^$' -bench FullBuild -benchtime 1x
//
// Metrics: MB/s of augen and of the baseline, their ratio, the payload data
// size relative to the sum of the bzip2 chunk sizes, and the process's peak
// RSS during augen's build.
func BenchmarkFullBuild(b *testing.B) {
	dir := testutil.Corpus(b)
	imgPath := filepath.Join(dir, "usr-new.img")
	st, err := os.Stat(imgPath)
	if err != nil {
		b.Fatal(err)
	}
	mb := float64(st.Size()) / 1e6
	var baseSecs float64
	var baseSize int64
	if os.Getenv("AUGEN_BENCH_NO_BASELINE") == "" {
		baseSecs, baseSize = bzip2Baseline(b, imgPath)
	}
	var size, peak int64
	b.ResetTimer()
	for b.Loop() {
		testutil.ResetPeakRSS()
		f, err := os.Open(imgPath)
		if err != nil {
			b.Fatal(err)
		}
		spool, err := os.CreateTemp(b.TempDir(), "blobs")
		if err != nil {
			b.Fatal(err)
		}
		cw := &countWriter{w: spool}
		if _, err := generate.Full(context.Background(), generate.FullOptions{Image: generate.Input{R: f, Size: st.Size()}, Blobs: cw}); err != nil {
			b.Fatal(err)
		}
		f.Close()
		spool.Close()
		size = cw.n
		peak = testutil.PeakRSS()
	}
	b.StopTimer()
	secs := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(mb/secs, "MB/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(size), "data-bytes")
	if baseSecs > 0 {
		b.ReportMetric(mb/baseSecs, "bzip2-MB/s")
		b.ReportMetric(baseSecs/secs, "x-vs-bzip2")
		b.ReportMetric(float64(size)/float64(baseSize), "size-vs-bzip2")
	}
}

// bzip2Baseline runs `bzip2 -9` on each 1 MiB chunk in turn, as a
// sequential libbz2 generator would, and returns the time and the total of
// min(compressed, raw) sizes (REPLACE when compression does not help).
func bzip2Baseline(b *testing.B, path string) (float64, int64) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, generate.ChunkSize)
	var total int64
	start := time.Now()
	for {
		n, err := io.ReadFull(f, buf)
		if n == 0 {
			break
		}
		cmd := exec.Command("bzip2", "-9", "-c")
		cmd.Stdin = bytes.NewReader(buf[:n])
		out, cerr := cmd.Output()
		if cerr != nil {
			b.Fatal(cerr)
		}
		total += int64(min(len(out), n))
		if err != nil {
			break
		}
	}
	return time.Since(start).Seconds(), total
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// BenchmarkDeltaBuild builds a delta from $AUGEN_CORPUS/usr-old.img to
// usr-new.img and reports its size as a fraction of the full payload's data
// (measured in the same run) and the peak RSS.
//
//	AUGEN_CORPUS=/path/to/corpus go test ./payload/generate -run '^$' -bench DeltaBuild -benchtime 1x
func BenchmarkDeltaBuild(b *testing.B) {
	dir := testutil.Corpus(b)
	open := func(name string) (*os.File, int64) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			b.Fatal(err)
		}
		st, _ := f.Stat()
		return f, st.Size()
	}
	nf, ns := open("usr-new.img")
	defer nf.Close()
	full := &countWriter{w: io.Discard}
	fullStart := time.Now()
	if _, err := generate.Full(context.Background(), generate.FullOptions{Image: generate.Input{R: io.NewSectionReader(nf, 0, ns), Size: ns}, Blobs: full}); err != nil {
		b.Fatal(err)
	}
	fullSecs := time.Since(fullStart).Seconds()
	of, os_ := open("usr-old.img")
	defer of.Close()
	var size int
	var peak int64
	b.ResetTimer()
	for b.Loop() {
		testutil.ResetPeakRSS()
		_, blobs, err := generate.Delta(context.Background(), generate.DeltaOptions{Old: generate.File{R: of, Size: os_}, New: generate.File{R: nf, Size: ns}})
		if err != nil {
			b.Fatal(err)
		}
		size = len(blobs)
		peak = testutil.PeakRSS()
	}
	secs := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(size), "delta-bytes")
	b.ReportMetric(float64(size)/float64(full.n), "delta/full")
	b.ReportMetric(secs/fullSecs, "time/full")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
}
