package main

import (
	"os"
	"strings"
	"testing"
)

// payload apply writes what the client would: the test vectors' full and
// delta payloads (made by the real delta_generator) give the new image and
// kernel byte for byte; the old image is left as it was; a payload that
// fails a check writes nothing.
func TestPayloadApply(t *testing.T) {
	tmp, vec := fixtures(t)
	pub := vec + "/TEST-ONLY-key-a.pub.pem"
	augen(t, "payload", "apply", vec+"/full-signed.bin", "--pubkey", pub, "-o", tmp+"/full.bin", "--kernel-out", tmp+"/full.vmlinuz")
	sameFile(t, tmp+"/full.bin", tmp+"/usr-new.bin")
	sameFile(t, tmp+"/full.vmlinuz", vec+"/vmlinuz-new")

	before, _ := os.ReadFile(tmp + "/usr-old.bin")
	augen(t, "payload", "apply", vec+"/delta-signed.bin", "--pubkey", pub, "--old", tmp+"/usr-old.bin", "--old-kernel", vec+"/vmlinuz-old", "-o", tmp+"/delta.bin", "--kernel-out", tmp+"/delta.vmlinuz")
	sameFile(t, tmp+"/delta.bin", tmp+"/usr-new.bin")
	sameFile(t, tmp+"/delta.vmlinuz", vec+"/vmlinuz-new")
	if after, _ := os.ReadFile(tmp + "/usr-old.bin"); string(after) != string(before) {
		t.Fatal("the old image was written to")
	}

	for _, c := range []struct {
		name, want string
		code       int
		args       []string
	}{
		{"wrong key", "does not verify", exitVerify, []string{vec + "/delta-signed.bin", "--pubkey", vec + "/TEST-ONLY-key-b.pub.pem", "--old", tmp + "/usr-old.bin", "--old-kernel", vec + "/vmlinuz-old"}},
		{"wrong old image", "", exitVerify, []string{vec + "/delta-signed.bin", "--pubkey", pub, "--old", tmp + "/usr-new.bin", "--old-kernel", vec + "/vmlinuz-old"}},
		{"no pubkey", "--pubkey is required", exitUsage, []string{vec + "/full-signed.bin"}},
	} {
		code, _, errOut := runAugen(append(append([]string{"payload", "apply"}, c.args...), "-o", tmp+"/bad.bin", "--kernel-out", tmp+"/bad.vmlinuz")...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d\n%s", c.name, code, errOut)
		}
		for _, p := range []string{"/bad.bin", "/bad.vmlinuz"} {
			if _, err := os.Stat(tmp + p); err == nil {
				t.Errorf("%s: %s was left behind", c.name, p)
			}
		}
	}
}
