package signer_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/signer"
)

// BenchmarkSign measures one RSA-2048 PKCS#1 v1.5 signature (with the
// verification every signer does before returning it) per backend; the
// sig/s metric is what the closing notes report.
func BenchmarkSign(b *testing.B) {
	d := sha256.Sum256([]byte("benchmark"))
	bench := func(b *testing.B, s signer.Signer) {
		defer s.Close()
		for b.Loop() {
			if _, err := s.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sig/s")
	}
	b.Run("file", func(b *testing.B) {
		p := filepath.Join(b.TempDir(), "k.pem")
		os.WriteFile(p, testutil.Read(b, testutil.Vector("TEST-ONLY-key-a.pem")), 0o600)
		s, err := signer.Open(context.Background(), "file:"+p, nil)
		if err != nil {
			b.Fatal(err)
		}
		bench(b, s)
	})
	b.Run("softhsm2", func(b *testing.B) {
		testutil.RequireSoftHSM(b, softhsmDir)
		testutil.SoftHSMToken(b, "bench", "1234", testutil.Vector("TEST-ONLY-key-a.pem"))
		s, err := signer.Open(context.Background(), "pkcs11:token=bench;object=key-1?module-path="+testutil.SoftHSMModule+"&pin-value=1234", nil)
		if err != nil {
			b.Fatal(err)
		}
		bench(b, s)
	})
	b.Run("swtpm", func(b *testing.B) {
		dev := testutil.Swtpm(b)
		uri := "tpm:key=" + filepath.Join(b.TempDir(), "k.tpmkey") + ";device=" + dev
		s, err := signer.ImportTPM(context.Background(), uri, testKeyA(b), &signer.Options{NoAuth: true})
		if err != nil {
			b.Fatal(err)
		}
		bench(b, s)
	})
	b.Run("simulator", func(b *testing.B) {
		opts := &signer.Options{TPM: sim(b), NoAuth: true}
		uri := "tpm:key=" + filepath.Join(b.TempDir(), "k.tpmkey")
		s, err := signer.ImportTPM(context.Background(), uri, testKeyA(b), opts)
		if err != nil {
			b.Fatal(err)
		}
		bench(b, s)
	})
}
