package authenticode

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

var (
	folderOnce sync.Once
	folderDir  string
)

// folder is one release folder (amd64) shared by the tests here.
func folder(t *testing.T) string {
	folderOnce.Do(func() {
		dir, err := os.MkdirTemp("", "augen-authenticode-*")
		if err != nil {
			t.Fatal(err)
		}
		folderDir = dir
	})
	testutil.Folder(t, folderDir, "4799.0.0", "amd64")
	return folderDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if folderDir != "" {
		os.RemoveAll(folderDir)
	}
	os.Exit(code)
}

func readCert(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(testutil.Read(t, p))
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func verifyFile(t *testing.T, p string, trusted ...*x509.Certificate) (*Signature, error) {
	t.Helper()
	b := testutil.Read(t, p)
	return Verify(bytes.NewReader(b), int64(len(b)), trusted)
}

// TestSbsignKernel: a kernel laid out as Flatcar's, signed by sbsign, is
// verified against its certificate (as sbverify does), refused against
// another, and refused after one byte of it changes (sbverify agrees on
// each verdict).
func TestSbsignKernel(t *testing.T) {
	dir := folder(t)
	kernel := filepath.Join(dir, "amd64-usr/4799.0.0/flatcar_production_image.vmlinuz")
	sb, other := readCert(t, dir+"/keys/sb.crt"), readCert(t, dir+"/keys/sb-other.crt")
	sig, err := verifyFile(t, kernel, other, sb)
	if err != nil {
		t.Fatal(err)
	}
	if sig.Subject != "CN=TEST-ONLY sb" || sig.Fingerprint != Fingerprint(sb) || sig.TrustedBy != Fingerprint(sb) {
		t.Fatalf("%+v", sig)
	}
	sbverify := func(p, cert string) bool {
		testutil.RequireTools(t, "sbverify")
		return exec.Command("sbverify", "--cert", cert, p).Run() == nil
	}
	if !sbverify(kernel, dir+"/keys/sb.crt") || sbverify(kernel, dir+"/keys/sb-other.crt") {
		t.Fatal("sbverify disagrees on the signed kernel")
	}
	if _, err := verifyFile(t, kernel, other); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("another certificate: %v", err)
	}
	// One byte of a section changed: neither verifies it.
	b := testutil.Read(t, kernel)
	b[0x2000] ^= 1
	changed := filepath.Join(t.TempDir(), "vmlinuz")
	os.WriteFile(changed, b, 0o644)
	if _, err := verifyFile(t, changed, sb); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "changed after it was signed") {
		t.Fatalf("changed kernel: %v", err)
	}
	if sbverify(changed, dir+"/keys/sb.crt") {
		t.Fatal("sbverify accepts the changed kernel")
	}
	// The root hash bytes (64-127) are hashed too: they were written
	// before signing.
	b = testutil.Read(t, kernel)
	b[64] ^= 1
	os.WriteFile(changed, b, 0o644)
	if _, err := verifyFile(t, changed, sb); !errors.Is(err, ErrInvalid) {
		t.Fatalf("changed root hash: %v", err)
	}
}

// TestUnsignedKernel: the kernel before sbsign has no certificate table.
func TestUnsignedKernel(t *testing.T) {
	dir := t.TempDir()
	folder := testutil.Folder(t, dir, "4799.0.0", "arm64", "KERNEL_SIGNER=none")
	if _, err := verifyFile(t, folder+"/flatcar_production_image.vmlinuz"); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("got %v", err)
	}
	if _, err := verifyFile(t, folder+"/flatcar_production_update.bin.bz2"); !errors.Is(err, ErrNotPE) {
		t.Fatalf("not a PE: %v", err)
	}
}

// TestDebianKernel reads the signature of a kernel Debian signed for
// Secure Boot and names its signer.
func TestDebianKernel(t *testing.T) {
	p := testutil.DebianKernel(t)
	sig, err := verifyFile(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sig.Subject, "Debian Secure Boot Signer") {
		t.Fatalf("signer %q", sig.Subject)
	}
	// Its own signer certificate, trusted as a leaf.
	if sig, err = verifyFile(t, p, sig.Signer); err != nil || sig.TrustedBy != sig.Fingerprint {
		t.Fatalf("%+v %v", sig, err)
	}
	t.Logf("Debian kernel signed by %s (SHA-256 %s)", sig.Subject, sig.Fingerprint)
}

func FuzzVerify(f *testing.F) {
	head := make([]byte, 0x400)
	copy(head, "MZ")
	head[0x3c] = 0x80
	copy(head[0x80:], "PE\x00\x00")
	f.Add(head)
	f.Fuzz(func(t *testing.T, b []byte) {
		Verify(bytes.NewReader(b), int64(len(b)), nil)
	})
}

// TestCraftedPE: a PE whose sections overlap (96 of them over the same
// bytes would have the file hashed 96 times) and one whose certificate
// table lies past the file's end are refused before anything is hashed;
// an unsigned kernel is no error where nothing requires a signature.
func TestCraftedPE(t *testing.T) {
	dir := folder(t)
	b := testutil.Read(t, filepath.Join(dir, "amd64-usr/4799.0.0/flatcar_production_image.vmlinuz"))
	pe := 0x80
	opt := pe + 24
	sec := opt + 240
	overlap := bytes.Clone(b)
	// The second section starts where the first does.
	copy(overlap[sec+40+20:sec+40+24], overlap[sec+20:sec+24])
	if _, err := Verify(bytes.NewReader(overlap), int64(len(overlap)), nil); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "overlaps") {
		t.Fatalf("overlapping sections: %v", err)
	}
	past := bytes.Clone(b)
	dd := opt + 112 + 4*8
	past[dd+4], past[dd+5], past[dd+6] = 0xff, 0xff, 0x7f // certificate table size
	if _, err := Verify(bytes.NewReader(past), int64(len(past)), nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("certificate table past the end: %v", err)
	}
	unsigned := testutil.Folder(t, t.TempDir(), "4799.0.0", "amd64", "KERNEL_SIGNER=none") + "/flatcar_production_image.vmlinuz"
	u := testutil.Read(t, unsigned)
	if sig, err := Check(bytes.NewReader(u), int64(len(u)), nil, false); sig != nil || err != nil {
		t.Fatalf("unsigned, not required: %v %v", sig, err)
	}
	if _, err := Check(bytes.NewReader(u), int64(len(u)), nil, true); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("unsigned, required: %v", err)
	}
}
