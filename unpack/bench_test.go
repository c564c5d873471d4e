package unpack_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/augen-project/augen/internal/testutil"

	"github.com/augen-project/augen/unpack"
)

// BenchmarkUnpackCorpus unpacks $AUGEN_CORPUS/image-new.bin.bz2 (stopping
// after USR-A, and with FullCheck) and, in the same run, times
// `lbzip2 -d -n 2` decoding the whole image to /dev/null. The corpus has no
// kernel in EFI-SYSTEM and no verity tree, so the kernel is given and the
// verity check skipped; the decoding, GPT, spooling and hashing are all real.
//
//	AUGEN_CORPUS=/path/to/corpus go test ./unpack -run '^$' -bench UnpackCorpus -benchtime 1x
func BenchmarkUnpackCorpus(b *testing.B) {
	dir := testutil.Corpus(b)
	path := filepath.Join(dir, "image-new.bin.bz2")
	usrSize, err := os.Stat(filepath.Join(dir, "usr-new.img"))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := exec.Command("lbzip2", "-d", "-n", "2", "-c", path).Run(); err != nil {
		b.Skip("lbzip2:", err)
	}
	lb := time.Since(start).Seconds()
	for _, full := range []bool{false, true} {
		name := "stop-after-USR-A"
		if full {
			name = "full-check"
		}
		b.Run(name, func(b *testing.B) {
			var peak int64
			for b.Loop() {
				testutil.ResetPeakRSS()
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				usr, _ := os.CreateTemp(b.TempDir(), "usr")
				_, _, err = unpack.Unpack(context.Background(), f, usr, unpack.Options{
					USRSize: min(usrSize.Size(), unpack.DefaultUSRSize), Kernel: []byte("kernel"),
					FullCheck: full, TempDir: b.TempDir(), UnsafeSkipVerity: true,
				})
				f.Close()
				usr.Close()
				if err != nil {
					b.Fatal(err)
				}
				peak = testutil.PeakRSS()
			}
			secs := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(secs/lb, "x-lbzip2-whole-image")
			b.ReportMetric(lb, "lbzip2-s")
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
		})
	}
}
