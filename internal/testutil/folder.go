package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Folder makes a release folder as Flatcar's download_payloads leaves it
// (testdata/folder/make-folder.sh: the /usr image, the Secure-Boot-signed
// kernel, two sysext DDIs, a buildbot .sig of each) under out, for version
// and arch (amd64, arm64), with the variant env (SIGN_SUBKEY=expired,
// KERNEL_SIGNER=none…: see the script). Keys are made once per out
// (out/keys). It returns the folder.
func Folder(t testing.TB, out, version, arch string, env ...string) string {
	t.Helper()
	RequireTools(t, "mkfs.erofs", "veritysetup", "sgdisk", "sbsign", "gpg", "faketime", "mke2fs", "openssl", "python3")
	cmd := exec.Command("bash", filepath.Join(Root(), "folder", "make-folder.sh"), out, version, arch)
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("make-folder.sh %s %s %v: %v\n%s", version, arch, env, err, stderr)
	}
	return string(b[:len(b)-1])
}

// DebianKernel is a kernel Debian signed for Secure Boot (vmlinuz from
// linux-image-*-amd64, which scripts/install-deps.sh extracts to
// /usr/local/share/augen-test), or $AUGEN_DEBIAN_KERNEL. The test is
// skipped when it is missing, or fails under AUGEN_REQUIRE_TOOLS.
func DebianKernel(t testing.TB) string {
	t.Helper()
	p := os.Getenv("AUGEN_DEBIAN_KERNEL")
	if p == "" {
		p = "/usr/local/share/augen-test/debian-vmlinuz"
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("AUGEN_REQUIRE_TOOLS") != "" {
			t.Fatalf("Debian's signed kernel: %v (scripts/install-deps.sh extracts it)", err)
		}
		t.Skipf("Debian's signed kernel: %v", err)
	}
	return p
}
