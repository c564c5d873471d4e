package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// The README's main flow: release from the sample production image, a
// starting policy, verify (with the delta applied and the CI image
// rebuilt); the same release twice is byte-identical; a second officer's
// signature meets a threshold of two; a bundle changed on the way fails
// with exit 3 and names the member.
func TestReleaseVerify(t *testing.T) {
	tmp, vec := fixtures(t)
	img := root + "image/flatcar_test_image.bin.bz2"
	oldImg := root + "image/flatcar_test_image-4459.1.0.bin.bz2"
	t.Setenv("SOURCE_DATE_EPOCH", "1258628400")
	rel := func(out string) {
		augen(t, "release", img, "--usr-size", "4MiB", "--version", "4459.2.1", "--key", "file:"+tmp+"/key-a.pem",
			"--bundle-key", "file:"+tmp+"/key-b.pem", "--delta-from", "4459.1.0="+oldImg, "-o", out)
	}
	rel(tmp + "/release.tar")
	rel(tmp + "/again.tar")
	sameFile(t, tmp+"/release.tar", tmp+"/again.tar")

	augen(t, "policy", "init", "--bundle-key", vec+"/TEST-ONLY-key-b.pub.pem", "--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "-o", tmp+"/policy.json")
	augen(t, "unpack", oldImg, "--usr-size", "4MiB", "-o", tmp+"/old")
	out := augen(t, "verify", "--policy", tmp+"/policy.json", tmp+"/release.tar", "--channel", "dev-channel",
		"--old", "4459.1.0="+tmp+"/old/usr.bin,"+tmp+"/old/vmlinuz", "--image", img, "--usr-size", "4MiB")
	if !strings.Contains(out, "OK: amd64-usr 4459.2.1") || !strings.Contains(out, "built from") || strings.Count(out, "rebuilt") != 2 {
		t.Fatalf("verify said:\n%s", out)
	}
	// The wrong old image: the new one given as 4459.1.0.
	augen(t, "unpack", img, "--usr-size", "4MiB", "-o", tmp+"/new")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"verify", "--policy", tmp + "/policy.json", tmp + "/release.tar",
		"--old", "4459.1.0=" + tmp + "/new/usr.bin," + tmp + "/new/vmlinuz"}, nil, &stdout, &stderr); code != exitVerify ||
		!strings.Contains(stderr.String(), "delta: the old image given for 4459.1.0") || !strings.Contains(stderr.String(), "is release 4459.2.1") {
		t.Fatalf("wrong old image: exit %d\n%s", code, stderr.String())
	}

	// Threshold 2: one signature is not enough; a second officer adds one.
	augen(t, "policy", "init", "--bundle-key", vec+"/TEST-ONLY-key-b.pub.pem", "--bundle-key", vec+"/TEST-ONLY-key-a.pub.pem",
		"--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "--threshold", "2", "-o", tmp+"/policy2.json")
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"verify", "--policy", tmp + "/policy2.json", tmp + "/release.tar"}, nil, &stdout, &stderr); code != exitVerify ||
		!strings.Contains(stderr.String(), "the policy needs 2") {
		t.Fatalf("threshold 2 with one signature: exit %d\n%s", code, stderr.String())
	}
	augen(t, "bundle", "sign", tmp+"/release.tar", "--key", "file:"+tmp+"/key-a.pem", "-o", tmp+"/signed2.tar")
	// Without the old release its delta cannot be applied: refused unless
	// allowed.
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"verify", "--policy", tmp + "/policy2.json", tmp + "/signed2.tar", "--channel", "stable"}, nil, &stdout, &stderr); code != exitVerify ||
		!strings.Contains(stderr.String(), "delta: not applied") {
		t.Fatalf("unapplied delta: exit %d\n%s", code, stderr.String())
	}
	out = augen(t, "verify", "--policy", tmp+"/policy2.json", tmp+"/signed2.tar", "--channel", "stable", "--allow-unapplied-deltas")
	if !strings.Contains(out, "NOT applied") {
		t.Fatalf("verify --allow-unapplied-deltas said:\n%s", out)
	}

	// One changed byte in the full payload's data.
	b, _ := os.ReadFile(tmp + "/release.tar")
	i := bytes.LastIndex(b, []byte("CrAU"))
	b[i+5000] ^= 1
	os.WriteFile(tmp+"/tampered.tar", b, 0o644)
	stderr.Reset()
	if code := run(context.Background(), []string{"verify", "--policy", tmp + "/policy.json", tmp + "/tampered.tar"}, nil, &stdout, &stderr); code != exitVerify ||
		!strings.Contains(stderr.String(), "flatcar_production_update.gz: digest: ") || !strings.Contains(stderr.String(), "it is not the file that was signed, so it was not read further") {
		t.Fatalf("tampered: exit %d\n%s", code, stderr.String())
	}
	// The wrong CI image.
	stderr.Reset()
	if code := run(context.Background(), []string{"verify", "--policy", tmp + "/policy.json", tmp + "/release.tar", "--image", img, "--usr-size", "2MiB"}, nil, &stdout, &stderr); code == 0 {
		t.Fatal("a payload verified as built from a different USR image")
	}
}
