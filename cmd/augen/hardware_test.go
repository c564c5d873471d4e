//go:build cgo

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

// tokenCount makes token labels unique within the test process.
var tokenCount int

// hardwareKeys puts TEST-ONLY key B in a SoftHSM2 token and key A in a
// fresh swtpm, and returns their URIs and the PIN file.
func hardwareKeys(t *testing.T, tmp string) (p11, tpm, pinFile string) {
	t.Helper()
	testutil.RequireSoftHSM(t, softhsmDir)
	tokenCount++
	label := fmt.Sprintf("rel-%d", tokenCount)
	testutil.SoftHSMToken(t, label, "2468", testutil.Vector("TEST-ONLY-key-b.pem"))
	pinFile = filepath.Join(tmp, "pin")
	os.WriteFile(pinFile, []byte("2468\n"), 0o600)
	p11 = "pkcs11:token=" + label + ";object=key-1;type=private?module-path=" + testutil.SoftHSMModule + "&pin-source=file:" + pinFile
	dev := testutil.Swtpm(t)
	tpmPIN := filepath.Join(tmp, "tpm.pin")
	os.WriteFile(tpmPIN, []byte("1357\n"), 0o600)
	tpm = "tpm:key=" + filepath.Join(tmp, "a.tpmkey") + ";device=" + dev + ";pin-source=file:" + tpmPIN
	augen(t, "key", "import", "--tpm", tpm, "--from", tmp+"/key-a.pem", "-o", tmp+"/a-from-tpm.pub.pem")
	sameFile(t, tmp+"/a-from-tpm.pub.pem", testutil.Vector("TEST-ONLY-key-a.pub.pem"))
	augen(t, "key", "pubkey", p11, "-o", tmp+"/b-from-hsm.pub.pem")
	sameFile(t, tmp+"/b-from-hsm.pub.pem", testutil.Vector("TEST-ONLY-key-b.pub.pem"))
	return p11, tpm, pinFile
}

// A payload signed by an HSM key and a TPM key: accepted by augen and by
// the independent checker with the TPM key (the last) as version 2; the
// same bytes as the two-pass flow with "augen sign", and as signing with
// the same keys from files.
func TestHardwareSignedPayload(t *testing.T) {
	testutil.RequireTools(t, "python3", "openssl")
	tmp, vec := fixtures(t)
	p11, tpm, _ := hardwareKeys(t, tmp)
	img, kernel := tmp+"/usr-new.bin", vec+"/vmlinuz-new"
	pubB, pubA := vec+"/TEST-ONLY-key-b.pub.pem", vec+"/TEST-ONLY-key-a.pub.pem"

	out := augen(t, "payload", "build", "--official", "--image", img, "--kernel", kernel, "--key", p11, "--key", tpm, "-o", tmp+"/hw.gz", "--json")
	if !strings.Contains(out, `"official": true`) || !strings.Contains(out, `"uri": "tpm:key=`) {
		t.Fatalf("build output: %s", out)
	}
	augen(t, "payload", "verify", tmp+"/hw.gz", "--pubkey", pubB, "--pubkey", pubA, "--image", img, "--kernel", kernel)
	cmd := exec.Command("python3", "../../testdata/checker/crau_check.py", tmp+"/hw.gz", "--pubkey", pubA, "--image", img, "--kernel", kernel)
	if o, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(o)) != "OK" {
		t.Fatalf("independent checker: %v %s", err, o)
	}

	augen(t, "payload", "build", "--image", img, "--kernel", kernel, "-o", tmp+"/unsigned.gz")
	augen(t, "payload", "digest", tmp+"/unsigned.gz", "--pubkey", pubB, "--pubkey", pubA, "-o", tmp+"/prepared.gz", "--digest-out", tmp+"/digest")
	augen(t, "sign", "--key", p11, "--digest", tmp+"/digest", "-o", tmp+"/sig1")
	augen(t, "sign", "--key", tpm, "--digest", tmp+"/digest", "-o", tmp+"/sig2")
	augen(t, "payload", "attach", tmp+"/prepared.gz", "--signature", tmp+"/sig1", "--pubkey", pubB, "--signature", tmp+"/sig2", "--pubkey", pubA, "-o", tmp+"/two.gz")
	sameFile(t, tmp+"/hw.gz", tmp+"/two.gz")

	augen(t, "payload", "build", "--image", img, "--kernel", kernel, "--key", "file:"+tmp+"/key-b.pem", "--key", "file:"+tmp+"/key-a.pem", "-o", tmp+"/files.gz")
	sameFile(t, tmp+"/hw.gz", tmp+"/files.gz")
}

// Every failure is one error line that names the key URI (never the PIN),
// exits non-zero, and leaves no output.
func TestHardwareKeyErrors(t *testing.T) {
	tmp, _ := fixtures(t)
	p11, tpm, pinFile := hardwareKeys(t, tmp)
	wrongPin := filepath.Join(tmp, "wrong-pin")
	os.WriteFile(wrongPin, []byte("13579\n"), 0o600)
	testutil.RequireTools(t, "pkcs11-tool")
	tokenCount++
	ecToken := fmt.Sprintf("ec-%d", tokenCount)
	testutil.SoftHSMToken(t, ecToken, "2468")
	if o, err := exec.Command("pkcs11-tool", "--module", testutil.SoftHSMModule, "--token-label", ecToken, "--login", "--pin", "2468",
		"--keypairgen", "--key-type", "EC:prime256v1", "--label", "ec", "--id", "30").CombinedOutput(); err != nil {
		t.Fatalf("pkcs11-tool: %v %s", err, o)
	}
	// A second token with an object of the same name makes a token-less
	// URI ambiguous.
	tokenCount++
	testutil.SoftHSMToken(t, fmt.Sprintf("dup-%d", tokenCount), "2468", testutil.Vector("TEST-ONLY-key-a.pem"))
	mod := "module-path=" + testutil.SoftHSMModule
	for _, tc := range []struct{ name, key, want string }{
		{"wrong PIN", strings.Replace(p11, pinFile, wrongPin, 1), "wrong PIN"},
		{"missing module", strings.Replace(p11, testutil.SoftHSMModule, "/opt/nowhere/libp11.so", 1), "PKCS#11 module"},
		{"key not found", strings.Replace(p11, "object=key-1", "object=key-9", 1), "no private key matches"},
		{"ambiguous", "pkcs11:object=key-1;type=private?" + mod + "&pin-source=file:" + pinFile, "ambiguous"},
		{"wrong key type", "pkcs11:token=" + ecToken + ";object=ec?" + mod + "&pin-source=file:" + pinFile, "not RSA"},
		{"TPM not reachable", "tpm:key=" + tmp + "/a.tpmkey;device=unix:" + tmp + "/no-tpm.sock", "TPM not reachable"},
		{"TPM key of another TPM", tpm[:strings.Index(tpm, ";device=")] + ";device=" + testutil.Swtpm(t), "another TPM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"payload", "build", "--image", tmp + "/usr-new.bin", "--key", tc.key, "-o", tmp + "/out.gz"}, nil, &stdout, &stderr)
			msg := stderr.String()
			if code == 0 || !strings.Contains(msg, tc.want) || strings.Count(msg, "augen: error: ") != 1 || strings.Count(strings.TrimSpace(msg), "\n") > 1 {
				t.Fatalf("exit %d, stderr:\n%s\nwant one error line containing %q", code, msg, tc.want)
			}
			scheme := tc.key[:strings.Index(tc.key, ":")+1]
			if !strings.Contains(msg, scheme) {
				t.Errorf("error does not name the key URI: %s", msg)
			}
			// As a word: random slot ids may hold the digits.
			for _, pin := range []string{"2468", "13579"} {
				if regexp.MustCompile(`\b` + pin + `\b`).MatchString(msg) {
					t.Errorf("the PIN appears in the error: %s", msg)
				}
			}
			if _, err := os.Stat(tmp + "/out.gz"); err == nil {
				t.Error("output written")
			}
		})
	}
	// --official refuses key files and unsigned output.
	for _, args := range [][]string{
		{"payload", "build", "--official", "--image", tmp + "/usr-new.bin", "--key", "file:" + tmp + "/key-a.pem", "-o", tmp + "/out.gz"},
		{"payload", "build", "--official", "--image", tmp + "/usr-new.bin", "-o", tmp + "/out.gz"},
		{"sign", "--official", "--key", "file:" + tmp + "/key-a.pem", "--digest", tmp + "/short.bin", "-o", tmp + "/sig"},
	} {
		var stderr bytes.Buffer
		if code := run(context.Background(), args, nil, &bytes.Buffer{}, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "--official refuses") {
			t.Errorf("%v: exit %d: %s", args, code, stderr.String())
		}
	}
}

// A TPM key gets an auth value, or is made without one only with
// --no-auth, which says so; --official refuses such a key; PIN files that
// others can read are refused like key files.
func TestTPMAuthRequired(t *testing.T) {
	if f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
		f.Close()
		t.Skip("a terminal is attached: key generate would prompt for the auth value")
	}
	tmp, _ := fixtures(t)
	dev := testutil.Swtpm(t)
	t.Setenv("AUGEN_TPM_PIN", "")
	os.Unsetenv("AUGEN_TPM_PIN")
	code, _, errOut := runAugen("key", "generate", "tpm:key="+tmp+"/none.tpmkey;device="+dev)
	if code == 0 || !strings.Contains(errOut, "--no-auth") || !strings.Contains(errOut, "pin-source") {
		t.Fatalf("a TPM key without auth and without --no-auth: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(tmp + "/none.tpmkey"); err == nil {
		t.Fatal("the refused key was written")
	}
	t.Setenv("AUGEN_TPM_PIN", "")
	if code, _, errOut := runAugen("key", "generate", "tpm:key="+tmp+"/empty.tpmkey;device="+dev); code == 0 || !strings.Contains(errOut, "empty auth value") {
		t.Fatalf("an empty auth value: exit %d\n%s", code, errOut)
	}
	os.Unsetenv("AUGEN_TPM_PIN")
	noAuth := "tpm:key=" + tmp + "/noauth.tpmkey;device=" + dev
	code, _, errOut = runAugen("key", "generate", "--no-auth", noAuth, "-o", tmp+"/noauth.pub.pem")
	if code != 0 || !strings.Contains(errOut, "WITHOUT an auth value") {
		t.Fatalf("--no-auth: exit %d\n%s", code, errOut)
	}
	os.WriteFile(tmp+"/digest", make([]byte, 32), 0o644)
	if code, _, errOut := runAugen("sign", "--official", "--key", noAuth, "--digest", tmp+"/digest", "-o", tmp+"/sig"); code == 0 || !strings.Contains(errOut, "without an auth value") {
		t.Fatalf("--official with a key without auth: exit %d\n%s", code, errOut)
	}
	augen(t, "sign", "--key", noAuth, "--digest", tmp+"/digest", "-o", tmp+"/sig")

	// An auth value from a PIN file: only one its owner alone can read.
	pin := tmp + "/tpm.pin"
	os.WriteFile(pin, []byte("8642\n"), 0o644)
	os.Chmod(pin, 0o644)
	withPIN := "tpm:key=" + tmp + "/pin.tpmkey;device=" + dev + ";pin-source=file:" + pin
	if code, _, errOut := runAugen("key", "generate", withPIN); code == 0 || !strings.Contains(errOut, "has mode 0644: others can read the secret in it") {
		t.Fatalf("a 0644 PIN file: exit %d\n%s", code, errOut)
	}
	os.Chmod(pin, 0o600)
	augen(t, "key", "generate", withPIN, "-o", tmp+"/pin.pub.pem")
	augen(t, "sign", "--official", "--key", withPIN, "--digest", tmp+"/digest", "-o", tmp+"/sig2")
}

// release --official: a key file refused; an HSM key without the image's
// signature refused; with both accepted, saying which input checks ran.
// bundle create and bundle sign refuse key files with --official too.
func TestOfficialRelease(t *testing.T) {
	tmp, _ := fixtures(t)
	p11, tpm, _ := hardwareKeys(t, tmp)
	img := root + "image/flatcar_test_image.bin.bz2"
	base := []string{"release", img, "--usr-size", "4MiB", "--version", "4459.2.1", "--official"}
	for _, c := range []struct {
		name, want string
		args       []string
	}{
		{"key file", "--official refuses key files", []string{"--key", "file:" + tmp + "/key-a.pem"}},
		{"bundle key file", "--official refuses key files", []string{"--key", tpm, "--bundle-key", "file:" + tmp + "/key-b.pem"}},
		{"no image check", "--official needs the CI image's OpenPGP signature checked", []string{"--key", tpm, "--bundle-key", p11}},
	} {
		code, _, errOut := runAugen(append(append(append([]string{}, base...), c.args...), "-o", tmp+"/r.tar")...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d\n%s", c.name, code, errOut)
		}
	}
	if _, err := os.Stat(tmp + "/r.tar"); err == nil {
		t.Fatal("a refused release was written")
	}
	// The image's signature checked, but its kernel is not signed for
	// Secure Boot: --official refuses it.
	sig := []string{"--signature", img + ".sig", "--signing-key", root + "image/TEST-ONLY-buildbot.asc"}
	code, _, errOut := runAugen(append(append(append([]string{}, base...), sig...), "--key", tpm, "--bundle-key", p11, "-o", tmp+"/r.tar")...)
	if code != exitVerify || !strings.Contains(errOut, "is not signed for Secure Boot") {
		t.Fatalf("official release of an unsigned kernel: exit %d\n%s", code, errOut)
	}
	// A release folder with every .sig and the Secure Boot signature
	// checked: accepted, saying which checks ran.
	dir, keys := folder(t, "amd64")
	code, _, errOut = runAugen("release", dir, "--official", "--signing-key", keys+"/buildbot.asc", "--secure-boot-cert", keys+"/sb.crt", "--key", tpm, "--bundle-key", p11, "-o", tmp+"/r.tar")
	if code != 0 || !strings.Contains(errOut, "input checks: "+dir+": the kernel carries the /usr's dm-verity root hash; kernel signed for Secure Boot by CN=TEST-ONLY sb;") || strings.Contains(errOut, "warning") {
		t.Fatalf("official release: exit %d\n%s", code, errOut)
	}
	// Without --official, an unchecked image is built with one warning.
	code, _, errOut = runAugen("release", img, "--usr-size", "4MiB", "--version", "4459.2.1", "--key", "file:"+tmp+"/key-a.pem", "-o", tmp+"/u.tar")
	if code != 0 || strings.Count(errOut, "the CI image's own checks did not run") != 1 {
		t.Fatalf("unchecked image: exit %d\n%s", code, errOut)
	}
	for _, args := range [][]string{
		{"bundle", "sign", tmp + "/r.tar", "--official", "--key", "file:" + tmp + "/key-b.pem", "-o", tmp + "/s.tar"},
		{"bundle", "create", "--official", "--version", "4459.2.1", "--payload", tmp + "/x.gz", "--payload-key", tmp + "/a-from-tpm.pub.pem", "--key", "file:" + tmp + "/key-b.pem", "-o", tmp + "/c.tar"},
	} {
		if code, _, errOut := runAugen(args...); code != exitUsage || !strings.Contains(errOut, "--official refuses key files") {
			t.Errorf("%s %s: exit %d\n%s", args[0], args[1], code, errOut)
		}
	}
	augen(t, "bundle", "sign", tmp+"/r.tar", "--official", "--key", tpm, "-o", tmp+"/s.tar")

	// payload build --from-image takes a CI image too: the same rule.
	build := []string{"payload", "build", "--official", "--from-image", img, "--usr-size", "4MiB", "--key", tpm, "-o", tmp + "/p.gz"}
	if code, _, errOut := runAugen(build...); code != exitUsage || !strings.Contains(errOut, "--official needs the CI image's OpenPGP signature checked") {
		t.Errorf("payload build --official --from-image without checks: exit %d\n%s", code, errOut)
	}
	code, _, errOut = runAugen(append(build, sig...)...)
	if code != 0 || !strings.Contains(errOut, "input checks: "+img+": OpenPGP signature by") {
		t.Errorf("payload build --official --from-image: exit %d\n%s", code, errOut)
	}
}

// A token's public key needs no login: key pubkey reads it without a PIN.
// key list prints URIs that work as printed (with the module), and only
// initialised tokens count (SoftHSM always shows an empty one).
func TestTokenPublicKeyAndList(t *testing.T) {
	tmp, _ := fixtures(t)
	p11, _, _ := hardwareKeys(t, tmp)
	base, _, _ := strings.Cut(p11, "?")
	noPIN := base + "?module-path=" + testutil.SoftHSMModule
	t.Setenv("AUGEN_PKCS11_PIN", "")
	code, out, errOut := runAugen("key", "pubkey", noPIN)
	if code != 0 || !strings.Contains(out, "BEGIN PUBLIC KEY") {
		t.Fatalf("key pubkey without a PIN: exit %d\n%s%s", code, out, errOut)
	}
	label := strings.TrimPrefix(strings.Split(base, ";")[0], "pkcs11:token=")
	t.Setenv("AUGEN_PKCS11_PIN", "2468")
	out = augen(t, "key", "list", "pkcs11:token="+label+"?module-path="+testutil.SoftHSMModule, "--json")
	var keys []struct {
		URI string `json:"uri"`
	}
	if err := json.Unmarshal([]byte(out), &keys); err != nil || len(keys) != 1 ||
		!strings.HasPrefix(keys[0].URI, "pkcs11:token="+label+";object=key-1;id=%01;type=private?module-path=/") {
		t.Fatalf("key list: %v\n%s", err, out)
	}
	// A URI key list printed opens the key as it is.
	augen(t, "key", "pubkey", keys[0].URI)
}
