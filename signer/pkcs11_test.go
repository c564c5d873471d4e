//go:build cgo

package signer_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/pubkey"
	"github.com/augen-project/augen/signer"
	"github.com/augen-project/augen/signer/signertest"
)

const mod = "module-path=" + testutil.SoftHSMModule

var tokensOnce sync.Once

// tokens sets up, once per process: token augen-a holding TEST-ONLY key A
// as key-1, token augen-b holding key B as key-1 (so a token-less URI for
// key-1 is ambiguous), both with PIN 1234.
func tokens(t *testing.T) string {
	t.Helper()
	testutil.RequireSoftHSM(t, softhsmDir)
	tokensOnce.Do(func() {
		testutil.SoftHSMToken(t, "augen-a", "1234", testutil.Vector("TEST-ONLY-key-a.pem"))
		testutil.SoftHSMToken(t, "augen-b", "1234", testutil.Vector("TEST-ONLY-key-b.pem"))
	})
	pin := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(pin, []byte("1234\n"), 0o600)
	return pin
}

func TestPKCS11KnownAnswer(t *testing.T) {
	pin := tokens(t)
	s, err := signer.Open(context.Background(), "pkcs11:token=augen-a;object=key-1;type=private?"+mod+"&pin-source=file:"+pin, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want, _ := pubkey.Load(testutil.Vector("TEST-ONLY-key-a.pub.pem"))
	signertest.Run(t, s, want)
	// The same digest openssl signed with key A for the test vectors.
	sig, err := s.Sign(rand.Reader, testutil.Read(t, testutil.Vector("full-2sig.hash")), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if string(sig) != string(testutil.Read(t, testutil.Vector("full-2sig.sig2"))) {
		t.Fatal("SoftHSM signature differs from openssl's for the same key and digest")
	}
}

func TestPKCS11GenerateListAndTokenless(t *testing.T) {
	pin := tokens(t)
	testutil.SoftHSMToken(t, "augen-gen", "5678")
	t.Setenv(signer.PINEnv, "5678")
	s, err := signer.Generate(context.Background(), "pkcs11:token=augen-gen;object=release-2026;id=%10?"+mod, 2048, nil)
	if err != nil {
		t.Fatal(err)
	}
	signertest.Run(t, s, nil)
	fp := s.Fingerprint()
	s.Close()
	// Flatcar's own URI form names no token: the key is found by its
	// public half, and the PIN is only tried on the token that holds it.
	s2, err := signer.Open(context.Background(), "pkcs11:object=release-2026;type=private?"+mod, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Fingerprint() != fp {
		t.Fatal("token-less URI opened another key")
	}
	s2.Close()
	if _, err := signer.Generate(context.Background(), "pkcs11:token=augen-gen;object=release-2026?"+mod, 2048, nil); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("second key with the same label: %v", err)
	}
	keys, err := signer.List(context.Background(), "pkcs11:token=augen-gen?"+mod, nil)
	if err != nil || len(keys) != 1 || keys[0].Fingerprint != fp || !strings.Contains(keys[0].URI, "object=release-2026;id=%10") {
		t.Fatalf("list: %+v %v", keys, err)
	}
	// A listed URI opens the key it lists.
	s3, err := signer.Open(context.Background(), keys[0].URI, nil) // it names its module
	if err != nil || s3.Fingerprint() != fp {
		t.Fatalf("listed URI: %v", err)
	}
	s3.Close()
	_ = pin
}

func TestPKCS11Errors(t *testing.T) {
	pin := tokens(t)
	bad := filepath.Join(t.TempDir(), "bad-pin")
	os.WriteFile(bad, []byte("999999\n"), 0o600)
	for _, tc := range []struct {
		name, uri, want string
	}{
		{"wrong PIN", "pkcs11:token=augen-a;object=key-1?" + mod + "&pin-source=file:" + bad, "wrong PIN"},
		{"missing module", "pkcs11:token=augen-a;object=key-1?module-path=/nonexistent/libnope.so&pin-source=file:" + pin, "no such file"},
		{"key not found", "pkcs11:token=augen-a;object=nope?" + mod + "&pin-source=file:" + pin, "no private key matches"},
		{"no such token", "pkcs11:token=nope;object=key-1?" + mod + "&pin-source=file:" + pin, "no token matches"},
		{"ambiguous", "pkcs11:object=key-1;type=private?" + mod + "&pin-source=file:" + pin, "ambiguous"},
		{"unknown attribute", "pkcs11:tokn=augen-a?" + mod, "unknown attribute \"tokn\""},
		{"public type", "pkcs11:token=augen-a;object=key-1;type=public?" + mod, "type=private"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := signer.Open(context.Background(), tc.uri, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "999999") || strings.Contains(err.Error(), "1234") {
				t.Fatalf("the PIN appears in the error: %v", err)
			}
			if strings.Count(err.Error(), "\n") > 0 {
				t.Fatalf("multi-line error: %q", err)
			}
		})
	}
}

// A PIN given in the URI works but is never repeated in errors or the
// URI the signer reports, and a warning says why it should not be used.
func TestPKCS11PinValueRedacted(t *testing.T) {
	tokens(t)
	var warned []string
	opts := &signer.Options{Log: func(m string) { warned = append(warned, m) }}
	s, err := signer.Open(context.Background(), "pkcs11:token=augen-a;object=key-1?"+mod+"&pin-value=1234", opts)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.URI(), "1234") || len(warned) != 1 {
		t.Fatalf("URI %q, warnings %q", s.URI(), warned)
	}
	s.Close()
	// (While a key of the token is open, the token stays logged in and
	// PKCS#11 checks no further PIN: close it first.)
	s, err = signer.Open(context.Background(), "pkcs11:token=augen-a;object=key-1?"+mod+"&pin-value=4321", opts)
	if err == nil {
		s.Close()
		t.Fatal("wrong pin-value accepted")
	}
	if strings.Contains(err.Error(), "4321") {
		t.Fatalf("the PIN appears in the error: %v", err)
	}
}

// A token key of another type than RSA is refused by name.
func TestPKCS11WrongKeyType(t *testing.T) {
	tokens(t)
	testutil.RequireTools(t, "pkcs11-tool")
	testutil.SoftHSMToken(t, "augen-ec", "1234")
	out, err := exec.Command("pkcs11-tool", "--module", testutil.SoftHSMModule, "--token-label", "augen-ec", "--login", "--pin", "1234",
		"--keypairgen", "--key-type", "EC:prime256v1", "--label", "ec-key", "--id", "20").CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool: %v\n%s", err, out)
	}
	_, err = signer.Open(context.Background(), "pkcs11:token=augen-ec;object=ec-key?"+mod+"&pin-value=1234", nil)
	if err == nil || !strings.Contains(err.Error(), "not RSA") || !strings.Contains(err.Error(), "pkcs11:token=augen-ec") {
		t.Fatalf("got %v", err)
	}
}
