package main

import (
	"os"
	"strings"
	"testing"
)

// A policy says what it does: with --threshold 2 a bundle signed by one
// officer verifies for dev-channel (any one key) and is refused without a
// channel and for stable, naming the keys found and needed, with what to
// do next. bundle sign --policy refuses a key the policy does not trust.
func TestThresholdsAndSigners(t *testing.T) {
	tmp, vec := fixtures(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1258628400")
	augen(t, "release", root+"image/flatcar_test_image.bin.bz2", "--usr-size", "4MiB", "--version", "4459.2.1",
		"--key", "file:"+tmp+"/key-a.pem", "--bundle-key", "file:"+tmp+"/key-b.pem", "-o", tmp+"/r.tar")
	augen(t, "policy", "init", "--bundle-key", "alice="+vec+"/TEST-ONLY-key-b.pub.pem", "--bundle-key", "bob="+vec+"/TEST-ONLY-key-a.pub.pem",
		"--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "--threshold", "2", "-o", tmp+"/p.json")
	if code, out, errOut := runAugen("verify", "--policy", tmp+"/p.json", tmp+"/r.tar", "--channel", "dev-channel"); code != 0 {
		t.Fatalf("dev-channel, one of two officers: exit %d\n%s%s", code, out, errOut)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "signed by 1 of the policy's bundle keys (alice ("},
		{[]string{"--channel", "stable"}, "channel stable needs 2 signatures by its keys ("},
	} {
		code, _, errOut := runAugen(append([]string{"verify", "--policy", tmp + "/p.json", tmp + "/r.tar"}, c.args...)...)
		if code != exitVerify || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "bob (") ||
			!strings.Contains(errOut, `augen: hint: another officer adds a signature with "augen bundle sign`) {
			t.Errorf("%v: exit %d\n%s", c.args, code, errOut)
		}
	}
	// A second officer whose key the policy does not list is refused: bob's
	// key against a policy that trusts alice alone.
	augen(t, "policy", "init", "--bundle-key", "alice="+vec+"/TEST-ONLY-key-b.pub.pem", "--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "-o", tmp+"/p1.json")
	other := tmp + "/key-a.pem"
	code, _, errOut := runAugen("bundle", "sign", tmp+"/r.tar", "--key", "file:"+other, "--policy", tmp+"/p1.json", "-o", tmp+"/s.tar")
	if code != exitVerify || !strings.Contains(errOut, "is not one of the bundle keys of "+tmp+"/p1.json (alice (") {
		t.Fatalf("bundle sign with an untrusted key: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(tmp + "/s.tar"); err == nil {
		t.Fatal("a refused signature was written")
	}
	// Signed by bob too, it verifies without a channel and for stable.
	augen(t, "bundle", "sign", tmp+"/r.tar", "--key", "file:"+tmp+"/key-a.pem", "--policy", tmp+"/p.json", "-o", tmp+"/s2.tar")
	augen(t, "verify", "--policy", tmp+"/p.json", tmp+"/s2.tar", "--channel", "stable")
}
