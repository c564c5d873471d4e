package pkcs7

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

// signed makes a detached signature of content with openssl, as
// systemd-repart signs a root hash (no attributes, binary) or, with
// attrs, with the authenticated attributes openssl adds by default.
func signed(t *testing.T, content string, attrs bool) (der []byte, cert *x509.Certificate) {
	t.Helper()
	testutil.RequireTools(t, "openssl")
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", dir+"/k.pem", "-out", dir+"/c.pem", "-subj", "/CN=TEST-ONLY pkcs7", "-days", "1")
	os.WriteFile(filepath.Join(dir, "content"), []byte(content), 0o644)
	args := []string{"smime", "-sign", "-in", dir + "/content", "-signer", dir + "/c.pem", "-inkey", dir + "/k.pem", "-outform", "DER", "-binary", "-out", dir + "/sig"}
	if !attrs {
		args = append(args, "-noattr")
	}
	run(args...)
	blk, _ := pem.Decode(testutil.Read(t, dir+"/c.pem"))
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return testutil.Read(t, dir+"/sig"), c
}

// TestOpensslSignatures: openssl's detached signatures (ECDSA here; the
// RSA ones are checked through sysext and authenticode), with and without
// authenticated attributes, verify over their content and fail over any
// other, and not with another certificate.
func TestOpensslSignatures(t *testing.T) {
	const root = "d70bf6378b98f597044d7acc3440bf5f0bdbe69d7ec54040eb41dfeee06bf8df"
	_, other := signed(t, root, false)
	for _, attrs := range []bool{false, true} {
		der, cert := signed(t, root, attrs)
		m, err := Parse(der)
		if err != nil {
			t.Fatal(err)
		}
		if m.SignerCertificate() == nil || !m.SignerMatches(cert) || m.SignerMatches(other) {
			t.Fatal("signer not identified")
		}
		if err := m.Verify(cert, []byte(root)); err != nil {
			t.Fatalf("attrs %v: %v", attrs, err)
		}
		if err := m.Verify(cert, []byte(root[1:]+"0")); !errors.Is(err, ErrVerify) {
			t.Fatalf("attrs %v, other content: %v", attrs, err)
		}
		if err := m.Verify(other, []byte(root)); !errors.Is(err, ErrVerify) {
			t.Fatalf("attrs %v, other certificate: %v", attrs, err)
		}
		if _, err := Parse(append(der, 0)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("trailing byte: %v", err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 0x06, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := Parse(b); err == nil {
			if c := m.SignerCertificate(); c != nil {
				m.Verify(c, b)
			}
		}
	})
}
