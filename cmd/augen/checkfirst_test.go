//go:build cgo

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

// Every command that opens a key checks its flags and input files first:
// given a usage mistake and a real HSM key with no PIN at hand (one that
// would prompt on a terminal, and here, with none, fails asking), each
// refuses the mistake (exit 2) without opening the key.
func TestChecksBeforeOpeningKeys(t *testing.T) {
	tmp, _ := fixtures(t)
	testutil.RequireSoftHSM(t, softhsmDir)
	tokenCount++
	label := fmt.Sprintf("prompt-%d", tokenCount)
	testutil.SoftHSMToken(t, label, "2468", testutil.Vector("TEST-ONLY-key-b.pem"))
	key := "pkcs11:token=" + label + ";object=key-1;type=private?module-path=" + testutil.SoftHSMModule
	// The key would ask: proof that opening it shows.
	t.Setenv("AUGEN_PKCS11_PIN", "")
	os.Unsetenv("AUGEN_PKCS11_PIN")
	os.WriteFile(filepath.Join(tmp, "digest32"), make([]byte, 32), 0o644)
	code, _, errOut := runAugen("sign", "--key", key, "--digest", tmp+"/digest32", "-o", tmp+"/sig")
	if code == 0 || !strings.Contains(errOut, "PIN") {
		t.Fatalf("the key does not ask for a PIN when opened: exit %d\n%s", code, errOut)
	}
	img := root + "image/flatcar_test_image.bin.bz2"
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"payload build, --json with -o -", []string{"payload", "build", "--image", tmp + "/usr.bin", "--key", key, "--json", "-o", "-"}, "--json and -o - both write to stdout"},
		{"payload build, --old-kernel without --old", []string{"payload", "build", "--image", tmp + "/usr.bin", "--old-kernel", tmp + "/k", "--key", key, "-o", tmp + "/p.gz"}, "--old-kernel goes with --old"},
		{"payload build, a missing image", []string{"payload", "build", "--image", tmp + "/missing.bin", "--key", key, "-o", tmp + "/p.gz"}, "missing.bin"},
		{"release, a bad --partition-size", []string{"release", img, "--version", "4459.2.1", "--usr-size", "4MiB", "--delta-from", "4459.1.0=" + img, "--partition-size", "1MiB", "--key", key, "-o", tmp + "/r.tar"}, "--partition-size 1MiB is smaller"},
		{"release, a missing delta source", []string{"release", img, "--version", "4459.2.1", "--delta-from", "4459.1.0=" + tmp + "/missing.bz2", "--key", key, "-o", tmp + "/r.tar"}, "missing.bz2"},
		{"release, a bad --secure-boot-cert", []string{"release", img, "--version", "4459.2.1", "--secure-boot-cert", tmp + "/digest32", "--key", key, "-o", tmp + "/r.tar"}, "holds no PEM certificate"},
		{"bundle create, no --payload-key", []string{"bundle", "create", "--version", "4459.2.1", "--payload", tmp + "/x.gz", "--key", key, "-o", tmp + "/c.tar"}, "--payload-key is required"},
		{"bundle sign, no bundle", []string{"bundle", "sign", "--key", key, "-o", tmp + "/s.tar"}, ""},
		{"sign, a digest of the wrong size", []string{"sign", "--key", key, "--digest", img, "-o", tmp + "/sig"}, "a digest from"},
		{"dist provenance, no files", []string{"dist", "provenance", "--version", "1.0.0", "--revision", "abc", "--binary", tmp + "/x", "--key", key, "-o", tmp + "/p.json"}, "expected --version"},
	} {
		code, _, errOut := runAugen(c.args...)
		if code != exitUsage || strings.Contains(errOut, "PIN") || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, want 2 with %q and no PIN asked:\n%s", c.name, code, c.want, errOut)
		}
	}
}
