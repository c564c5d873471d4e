package verify

import (
	"bytes"
	"context"
	"crypto"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/generate"
)

// BenchmarkVerifyCorpus verifies a release of $AUGEN_CORPUS/usr-new.img
// (the full payload built and bundled first, untimed) and, in the same
// run, times `sha256sum` of the payload plus `bzip2 -dc` of its blobs: the
// baseline the target ratio refers to.
//
//	AUGEN_CORPUS=/path/to/corpus go test ./verify -run '^$' -bench VerifyCorpus -benchtime 1x
func BenchmarkVerifyCorpus(b *testing.B) {
	dir := testutil.Corpus(b)
	tmp := b.TempDir()
	img, err := os.Open(filepath.Join(dir, "usr-new.img"))
	if err != nil {
		b.Fatal(err)
	}
	st, _ := img.Stat()
	keyA, keyB := testutil.Key(b, "a"), testutil.Key(b, "b")
	payloadPath := filepath.Join(tmp, "update.gz")
	pf, _ := os.Create(payloadPath)
	opts := generate.BuildOptions{SignatureSizes: []int{256}, Sign: payload.SignWith([]crypto.Signer{keyA}), TempDir: tmp}
	opts.Image = generate.Input{R: img, Size: st.Size()}
	if _, err := generate.BuildFull(context.Background(), pf, opts); err != nil {
		b.Fatal(err)
	}
	pf.Close()
	img.Close()
	bundlePath := filepath.Join(tmp, "release.tar")
	bf, _ := os.Create(bundlePath)
	if _, err := bundle.Build(bf, bundle.BuildOptions{Version: "1.0.0", Board: "amd64-usr", MTime: time.Unix(0, 0),
		Payloads:    []bundle.PayloadFile{{Path: payloadPath, Name: "flatcar_production_update.gz", Kind: bundle.KindFull}},
		PayloadKeys: []crypto.PublicKey{keyA.Public()}, Signers: []crypto.Signer{keyB}}); err != nil {
		b.Fatal(err)
	}
	bf.Close()

	// Baseline: sha256sum of the payload, bzip2 -dc of its blobs.
	blobs := filepath.Join(tmp, "blobs.bz2")
	extractBlobs(b, payloadPath, blobs)
	start := time.Now()
	for _, c := range [][]string{{"sha256sum", payloadPath}, {"sh", "-c", "bzip2 -dc " + blobs + " > /dev/null"}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v %s", c, err, out)
		}
	}
	base := time.Since(start).Seconds()

	p, _ := NewPolicy([]crypto.PublicKey{keyB.Public()}, []crypto.PublicKey{keyA.Public()}, 1)
	trust, _ := NewTrust(*p)
	b.ResetTimer()
	for b.Loop() {
		f, _ := os.Open(bundlePath)
		st, _ := f.Stat()
		if _, _, err := Bundle(context.Background(), f, st.Size(), trust, Options{TempDir: tmp}); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	secs := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(base, "baseline-s")
	b.ReportMetric(secs/base, "x-baseline")
}

// extractBlobs writes the REPLACE_BZ blobs of a payload one after another
// (bzip2 -dc reads concatenated streams).
func extractBlobs(b *testing.B, path, out string) {
	f, _ := os.Open(path)
	defer f.Close()
	pr, err := payload.NewReader(f, nil)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	for {
		op, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		if op.GetType() == payload.OpReplaceBz {
			buf.Write(op.Data)
		}
	}
	os.WriteFile(out, buf.Bytes(), 0o644)
}
