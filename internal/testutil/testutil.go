// Package testutil holds what the project's tests share: the TEST-ONLY keys
// and inputs in testdata/vectors, and the rule for external tools (skip
// when missing, fail when AUGEN_REQUIRE_TOOLS is set, as in CI).
package testutil

import (
	"bytes"
	"compress/bzip2"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Root is the repository's testdata directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata")
}

// Vector is the path of a file in testdata/vectors.
func Vector(name string) string { return filepath.Join(Root(), "vectors", name) }

// Read reads a file or fails the test.
func Read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Unbzip2 reads a .bz2 file and returns its content.
func Unbzip2(t testing.TB, path string) []byte {
	t.Helper()
	b, err := io.ReadAll(bzip2.NewReader(bytes.NewReader(Read(t, path))))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Key loads TEST-ONLY-key-NAME.pem (PKCS#1 or PKCS#8).
func Key(t testing.TB, name string) crypto.Signer {
	t.Helper()
	blk, _ := pem.Decode(Read(t, Vector("TEST-ONLY-key-"+name+".pem")))
	if blk == nil {
		t.Fatalf("TEST-ONLY-key-%s.pem: no PEM block", name)
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

// RequireTools skips the test when a tool is missing, or fails it when
// AUGEN_REQUIRE_TOOLS is set (CI installs every tool, so a missing one
// there is a broken install, not a reason to test less).
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("AUGEN_REQUIRE_TOOLS") != "" {
				t.Fatalf("%s not found: run scripts/install-deps.sh, or set AUGEN_SKIP_MISSING_TOOLS=1 (scripts/test.sh) to skip such tests", tool)
			}
			t.Skipf("%s not found", tool)
		}
	}
}

// ResetPeakRSS resets the kernel's high-water mark of this process's
// resident memory, so that PeakRSS measures what follows.
func ResetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// PeakRSS reads VmHWM from /proc/self/status, in bytes (0 if unknown).
func PeakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Corpus returns $AUGEN_CORPUS, the benchmark corpus directory made by
// scripts/make-corpus.sh, or skips the benchmark when it is not set.
func Corpus(b *testing.B) string {
	b.Helper()
	dir := os.Getenv("AUGEN_CORPUS")
	if dir == "" {
		b.Skip("set AUGEN_CORPUS to a corpus directory (scripts/make-corpus.sh SIZE DIR)")
	}
	return dir
}

// SaveCrafted writes a crafted hostile input to $AUGEN_CRAFTED_DIR when it
// is set, so that scripts/hostile-inputs.sh can time augen on exactly the
// inputs the tests craft. Otherwise it does nothing.
func SaveCrafted(t testing.TB, name string, b []byte) {
	t.Helper()
	dir := os.Getenv("AUGEN_CRAFTED_DIR")
	if dir == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// MakeFS makes a 64 MiB filesystem image of kind ext2, ext3, ext4 (4 KiB
// blocks, fixed UUID and hash seed) or btrfs (mixed block groups, single
// profiles, as the corpus) holding the tree src, and returns its bytes.
// Kinds erofs and erofs-lz4 make an EROFS image (as systemd-repart puts
// in a sysext, uncompressed or with lz4) of the tree's size, with fixed
// timestamps and UUID.
func MakeFS(t testing.TB, kind, src string) []byte {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fs.img")
	if kind == "erofs" || kind == "erofs-lz4" {
		RequireTools(t, "mkfs.erofs")
		args := []string{"--quiet", "-T0", "-U", "2b5f0c1a-7e4d-4c3b-9f8e-1a2b3c4d5e6f", "--all-root"}
		if kind == "erofs-lz4" {
			args = append(args, "-zlz4")
		}
		cmd := exec.Command("mkfs.erofs", append(args, img, src)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
		return Read(t, img)
	}
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if kind == "btrfs" {
		RequireTools(t, "mkfs.btrfs")
		cmd = exec.Command("mkfs.btrfs", "-q", "-f", "--mixed", "-m", "single", "-d", "single", "--rootdir", src, img)
	} else {
		RequireTools(t, "mke2fs")
		const uuid = "2b5f0c1a-7e4d-4c3b-9f8e-1a2b3c4d5e6f"
		cmd = exec.Command("mke2fs", "-q", "-F", "-t", kind, "-b", "4096", "-U", uuid, "-E", "hash_seed="+uuid, "-d", src, img)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	return Read(t, img)
}
