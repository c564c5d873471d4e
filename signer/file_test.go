package signer_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/augen-project/augen/signer"
)

const vectors = "../testdata/vectors/"

// keyFile copies a TEST-ONLY key to a 0600 file (git does not keep modes).
func keyFile(t *testing.T, name string, mode os.FileMode) string {
	t.Helper()
	b, err := os.ReadFile(vectors + name)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
	return p
}

func TestFileKeySignsAndVerifies(t *testing.T) {
	s, err := signer.Open(context.Background(), "file:"+keyFile(t, "TEST-ONLY-key-a.pem", 0o600), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.SignatureSize() != 256 {
		t.Errorf("signature size %d", s.SignatureSize())
	}
	if s.Fingerprint() != "5783a7e03b32d98eef74a928ca9c69b11c9c3a832ee9f4717612e2cb64558f00" {
		t.Errorf("fingerprint %s", s.Fingerprint())
	}
	d := sha256.Sum256([]byte("This is some data to sign."))
	sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(s.Public().(*rsa.PublicKey), crypto.SHA256, d[:], sig); err != nil {
		t.Fatal(err)
	}
	// The same digest signed by openssl for the test vectors.
	hash, _ := os.ReadFile(vectors + "full-2sig.hash")
	want, _ := os.ReadFile(vectors + "full-2sig.sig2")
	got, err := s.Sign(rand.Reader, hash, crypto.SHA256)
	if err != nil || string(got) != string(want) {
		t.Fatalf("signature differs from openssl's (%v)", err)
	}
	if _, err := s.Sign(rand.Reader, d[:20], crypto.SHA256); err == nil || !strings.Contains(err.Error(), "digest is 20 bytes") {
		t.Fatalf("short digest: %v", err)
	}
	if _, err := s.Sign(rand.Reader, d[:], crypto.SHA1); err == nil {
		t.Fatal("SHA-1 accepted")
	}
}

func TestPKCS1KeyFile(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "k.pem")
	os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600)
	s, err := signer.Open(context.Background(), "file:"+p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Public().(*rsa.PublicKey).Equal(&k.PublicKey) {
		t.Fatal("wrong public key")
	}
}

func TestFileKeyErrors(t *testing.T) {
	open := keyFile(t, "TEST-ONLY-key-a.pem", 0o644)
	if _, err := signer.Open(context.Background(), "file:"+open, nil); !errors.Is(err, signer.ErrInsecure) {
		t.Fatalf("world-readable key: %v", err)
	}
	if _, err := signer.Open(context.Background(), "file:"+open, &signer.Options{AllowInsecureKeyFile: true}); err != nil {
		t.Fatalf("allowed insecure key: %v", err)
	}
	enc, _ := os.ReadFile("../testdata/keys/TEST-ONLY-key-a.encrypted.pem")
	ep := filepath.Join(t.TempDir(), "enc.pem")
	os.WriteFile(ep, enc, 0o600)
	for _, tc := range []struct{ uri, want string }{
		{"file:" + ep, "encrypted"},
		{"file:" + keyFile(t, "TEST-ONLY-key-a.pub.pem", 0o600), "public key"},
		{"file:/nonexistent/key.pem", "no such file"},
		{"file:", "needs a path"},
		{"nokey", "expected SCHEME"},
	} {
		if _, err := signer.Open(context.Background(), tc.uri, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.uri, err, tc.want)
		}
	}
}
