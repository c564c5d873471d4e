package signer_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/simulator"

	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/pubkey"
	"github.com/augen-project/augen/signer"
	"github.com/augen-project/augen/signer/signertest"
)

// sim opens the in-process TPM simulator (one at a time per process).
func sim(t testing.TB) transport.TPMCloser {
	t.Helper()
	tpm, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tpm.Close() })
	return tpm
}

func testKeyA(t testing.TB) *rsa.PrivateKey { return testutil.Key(t, "a").(*rsa.PrivateKey) }

// Each TPM stand-in: a generated key passes the conformance suite, and key
// A imported into the TPM reproduces openssl's signature byte for byte.
func TestTPMBackends(t *testing.T) {
	for _, backend := range []string{"simulator", "swtpm"} {
		t.Run(backend, func(t *testing.T) {
			// Keys without an auth value, as a test stand-in.
			opts := &signer.Options{NoAuth: true}
			dev := "/dev/null-unused"
			if backend == "simulator" {
				opts.TPM = sim(t)
			} else {
				dev = testutil.Swtpm(t)
			}
			dir := t.TempDir()
			gen := "tpm:key=" + filepath.Join(dir, "gen.tpmkey") + ";device=" + dev
			s, err := signer.Generate(context.Background(), gen, 2048, opts)
			if err != nil {
				t.Fatal(err)
			}
			signertest.Run(t, s, nil)
			s.Close()

			imp := "tpm:key=" + filepath.Join(dir, "a.tpmkey") + ";device=" + dev
			s, err = signer.ImportTPM(context.Background(), imp, testKeyA(t), opts)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := pubkey.Load(testutil.Vector("TEST-ONLY-key-a.pub.pem"))
			signertest.Run(t, s, want)
			sig, err := s.Sign(rand.Reader, testutil.Read(t, testutil.Vector("full-2sig.hash")), crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if string(sig) != string(testutil.Read(t, testutil.Vector("full-2sig.sig2"))) {
				t.Fatal("TPM signature differs from openssl's for the same key and digest")
			}
			s.Close()

			// Persisted at a handle, then opened by handle.
			h := "tpm:handle=0x81000010;device=" + dev
			s, err = signer.ImportTPM(context.Background(), h, testKeyA(t), opts)
			if err != nil {
				t.Fatal(err)
			}
			fp := s.Fingerprint()
			s.Close()
			s, err = signer.Open(context.Background(), h, opts)
			if err != nil || s.Fingerprint() != fp {
				t.Fatalf("open by handle: %v", err)
			}
			s.Close()
			if _, err := signer.ImportTPM(context.Background(), h, testKeyA(t), opts); err == nil || !strings.Contains(err.Error(), "in use") {
				t.Fatalf("handle reuse: %v", err)
			}
		})
	}
}

func TestTPMAuthAndErrors(t *testing.T) {
	tpm := sim(t)
	opts := &signer.Options{TPM: tpm}
	dir := t.TempDir()
	uri := "tpm:key=" + filepath.Join(dir, "auth.tpmkey")
	t.Setenv(signer.TPMPINEnv, "right")
	s, err := signer.Generate(context.Background(), uri, 2048, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// --official (RequireAuth) takes it; a key made with NoAuth it refuses.
	if s, err := signer.Open(context.Background(), uri, &signer.Options{TPM: tpm, RequireAuth: true}); err != nil {
		t.Fatalf("RequireAuth, a key with auth: %v", err)
	} else {
		s.Close()
	}
	os.Unsetenv(signer.TPMPINEnv)
	open := "tpm:key=" + filepath.Join(dir, "open.tpmkey")
	if _, err := signer.Generate(context.Background(), open, 2048, &signer.Options{TPM: tpm}); !errors.Is(err, signer.ErrNoAuth) {
		t.Fatalf("Generate without an auth value or NoAuth: %v", err)
	}
	if s, err := signer.Generate(context.Background(), open, 2048, &signer.Options{TPM: tpm, NoAuth: true}); err != nil {
		t.Fatal(err)
	} else {
		s.Close()
	}
	if _, err := signer.Open(context.Background(), open, &signer.Options{TPM: tpm, RequireAuth: true}); !errors.Is(err, signer.ErrNoAuth) {
		t.Fatalf("RequireAuth, a key without auth: %v", err)
	}
	t.Setenv(signer.TPMPINEnv, "wrong")
	s, err = signer.Open(context.Background(), uri, opts)
	if err != nil {
		t.Fatal(err) // the auth value is only checked when signing
	}
	d := make([]byte, 32)
	_, err = s.Sign(rand.Reader, d, crypto.SHA256)
	s.Close()
	if err == nil || !strings.Contains(err.Error(), "wrong auth") || strings.Contains(err.Error(), "wrong\"") {
		t.Fatalf("wrong auth: %v", err)
	}

	// An ECC key and an RSA key whose scheme is not pinned are refused.
	srk, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tpm2.ECCSRKTemplate)}.Execute(tpm)
	if err != nil {
		t.Fatal(err)
	}
	defer tpm2.FlushContext{FlushHandle: srk.ObjectHandle}.Execute(tpm)
	persist := func(tmpl tpm2.TPMTPublic, h tpm2.TPMHandle) {
		rsp, err := tpm2.Create{ParentHandle: tpm2.NamedHandle{Handle: srk.ObjectHandle, Name: srk.Name}, InPublic: tpm2.New2B(tmpl)}.Execute(tpm)
		if err != nil {
			t.Fatal(err)
		}
		ld, err := tpm2.Load{ParentHandle: tpm2.NamedHandle{Handle: srk.ObjectHandle, Name: srk.Name}, InPublic: rsp.OutPublic, InPrivate: rsp.OutPrivate}.Execute(tpm)
		if err != nil {
			t.Fatal(err)
		}
		defer tpm2.FlushContext{FlushHandle: ld.ObjectHandle}.Execute(tpm)
		if _, err := (tpm2.EvictControl{Auth: tpm2.TPMRHOwner, ObjectHandle: tpm2.NamedHandle{Handle: ld.ObjectHandle, Name: ld.Name}, PersistentHandle: h}).Execute(tpm); err != nil {
			t.Fatal(err)
		}
	}
	ecc := tpm2.TPMTPublic{
		Type: tpm2.TPMAlgECC, NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, SignEncrypt: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			CurveID: tpm2.TPMECCNistP256,
			Scheme:  tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDSA, Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256})},
		}),
	}
	persist(ecc, 0x81000020)
	unpinned := tpm2.TPMTPublic{
		Type: tpm2.TPMAlgRSA, NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, SignEncrypt: true},
		Parameters:       tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{KeyBits: 2048}),
	}
	persist(unpinned, 0x81000021)
	for _, tc := range []struct{ uri, want string }{
		{"tpm:handle=0x81000020", "not RSA"},
		{"tpm:handle=0x81000021", "not pinned to RSASSA"},
		{"tpm:handle=0x81000099", "no key at that handle"},
		{"tpm:handle=0x01000001", "not a persistent handle"},
		{"tpm:key=" + filepath.Join(dir, "missing.tpmkey"), "no such file"},
		{"tpm:handle=0x81000010;key=/x", "exactly one of"},
	} {
		_, err := signer.Open(context.Background(), tc.uri, opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "tpm:") {
			t.Errorf("%s: got %v, want %q", tc.uri, err, tc.want)
		}
	}
	// No TPM at the device named.
	_, err = signer.Open(context.Background(), "tpm:handle=0x81000010;device=unix:/nonexistent/swtpm.sock", nil)
	if err == nil || !strings.Contains(err.Error(), "TPM not reachable") {
		t.Fatalf("unreachable: %v", err)
	}
}
