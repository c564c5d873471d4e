package pbzip2

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/augen-project/augen/internal/testutil"
)

// BenchmarkEncodeCorpus compresses the 1 MiB chunks of
// $AUGEN_CORPUS/usr-new.img (the first $AUGEN_BENCH_CHUNKS of them, default
// all) one after another on one goroutine: the encoder's speed per core.
// In the same run, alternating with the encoder, `bzip2 -9` and
// `lbzip2 -9 -n 1` compress the same chunks one at a time. Run it with one
// core for a per-core figure:
//
//	AUGEN_CORPUS=/path/to/corpus go test ./internal/pbzip2 -run '^$' -bench EncodeCorpus -benchtime 3x -cpu 1
//
// Metrics: MB/s per core of the encoder and of each tool (their median
// over the iterations), the encoder's speed relative to each, and its
// output size relative to bzip2's (1 means identical bytes: every chunk is
// also compared).
func BenchmarkEncodeCorpus(b *testing.B) {
	dir := testutil.Corpus(b)
	img, err := os.ReadFile(filepath.Join(dir, "usr-new.img"))
	if err != nil {
		b.Fatal(err)
	}
	if n, err := strconv.Atoi(os.Getenv("AUGEN_BENCH_CHUNKS")); err == nil && n > 0 {
		img = img[:min(len(img), n<<20)]
	}
	var chunks [][]byte
	for off := 0; off < len(img); off += 1 << 20 {
		chunks = append(chunks, img[off:min(len(img), off+1<<20)])
	}
	mb := float64(len(img)) / 1e6
	tool := func(name string, args ...string) (float64, [][]byte) {
		if _, err := exec.LookPath(name); err != nil {
			return 0, nil
		}
		outs := make([][]byte, len(chunks))
		start := time.Now()
		for i, c := range chunks {
			cmd := exec.Command(name, args...)
			cmd.Stdin = bytes.NewReader(c)
			if outs[i], err = cmd.Output(); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start).Seconds(), outs
	}
	var bzTimes, lbTimes, ownTimes []float64
	var want [][]byte
	e := NewEncoder()
	out := make([]byte, 0, 2<<20)
	var ownSize, bzSize int
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		secs, outs := tool("bzip2", "-9", "-c")
		if secs > 0 {
			bzTimes = append(bzTimes, secs)
			want = outs
		}
		if secs, _ := tool("lbzip2", "-9", "-n", "1", "-c"); secs > 0 {
			lbTimes = append(lbTimes, secs)
		}
		b.StartTimer()
		start := time.Now()
		ownSize = 0
		for i, c := range chunks {
			out = e.Encode(out[:0], c, Stream)
			ownSize += len(out)
			if want != nil && !bytes.Equal(out, want[i]) {
				b.Fatalf("chunk %d differs from bzip2 -9", i)
			}
		}
		ownTimes = append(ownTimes, time.Since(start).Seconds())
	}
	b.StopTimer()
	own := median(ownTimes)
	b.ReportMetric(mb/own, "MB/s")
	if len(bzTimes) > 0 {
		for _, w := range want {
			bzSize += len(w)
		}
		b.ReportMetric(mb/median(bzTimes), "bzip2-MB/s")
		b.ReportMetric(median(bzTimes)/own, "x-vs-bzip2")
		b.ReportMetric(float64(ownSize)/float64(bzSize), "size-vs-bzip2")
	}
	if len(lbTimes) > 0 {
		b.ReportMetric(mb/median(lbTimes), "lbzip2-MB/s")
		b.ReportMetric(median(lbTimes)/own, "x-vs-lbzip2")
	}
}

func median(x []float64) float64 {
	s := append([]float64(nil), x...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}
