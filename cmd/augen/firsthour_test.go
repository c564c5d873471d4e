package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/augen-project/augen/nebraska/nebraskatest"
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

// What a damaged or mislabelled input gets: a truncated bundle is called
// truncated, a damaged tar header is placed where it starts, a delta given
// no old release names the flag, an --old that matches no delta is a
// failure (not ignored), and a member changed after signing says so.
func TestBundleMistakesSayWhatToDo(t *testing.T) {
	tmp, vec := fixtures(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1258628400")
	old := root + "image/flatcar_test_image-4459.1.0.bin.bz2"
	augen(t, "release", root+"image/flatcar_test_image.bin.bz2", "--usr-size", "4MiB", "--version", "4459.2.1",
		"--key", "file:"+tmp+"/key-a.pem", "--bundle-key", "file:"+tmp+"/key-b.pem", "--delta-from", "4459.1.0="+old, "-o", tmp+"/r.tar")
	augen(t, "policy", "init", "--bundle-key", vec+"/TEST-ONLY-key-b.pub.pem", "--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "-o", tmp+"/p.json")
	b, err := os.ReadFile(tmp + "/r.tar")
	if err != nil {
		t.Fatal(err)
	}
	// The second member's header starts after the envelope's data.
	hdr2 := int64(-1)
	for off := int64(512); off+512 <= int64(len(b)); off += 512 {
		if strings.HasPrefix(string(b[off:off+100]), "delta-from-") {
			hdr2 = off
			break
		}
	}
	if hdr2 < 0 {
		t.Fatal("no delta member header")
	}
	damaged := append([]byte{}, b...)
	damaged[hdr2+100] ^= 0x40 // the mode field: the checksum no longer matches
	os.WriteFile(tmp+"/damaged.tar", damaged, 0o644)
	os.WriteFile(tmp+"/truncated.tar", b[:len(b)*2/3], 0o644)
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"truncated", []string{tmp + "/truncated.tar", "--old", "4459.1.0=" + old}, []string{"the bundle is truncated (an interrupted download or copy?)"}},
		{"damaged header", []string{tmp + "/damaged.tar", "--old", "4459.1.0=" + old}, []string{fmt.Sprintf("the tar header at bytes %d..%d is damaged", hdr2, hdr2+512)}},
		{"no --old", []string{tmp + "/r.tar"}, []string{"not applied: no old release 4459.1.0", "augen: hint: give the release it applies to: --old 4459.1.0="}},
		{"wrong old image", []string{tmp + "/r.tar", "--old", "4459.1.0=" + root + "image/flatcar_test_image.bin.bz2"},
			[]string{"the old image given for 4459.1.0 (" + root + "image/flatcar_test_image.bin.bz2) is release 4459.2.1", "augen: hint: give the 4459.1.0 image: --old 4459.1.0=", "1 check(s) failed"}},
		{"mislabelled --old", []string{tmp + "/r.tar", "--old", "4459.0.0=" + old},
			[]string{"an old release 4459.0.0 was given, but the bundle has no delta from it (its deltas are from 4459.1.0)", "augen: hint: check the version in --old 4459.0.0="}},
	} {
		code, _, errOut := runAugen(append([]string{"verify", "--policy", tmp + "/p.json", "--usr-size", "4MiB"}, c.args...)...)
		if code != exitVerify {
			t.Errorf("%s: exit %d\n%s", c.name, code, errOut)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s: no %q in\n%s", c.name, w, errOut)
			}
		}
	}
}

// push status lists the server's channels without --channel, and names
// them when --channel is a typo.
func TestPushStatusListsChannels(t *testing.T) {
	s := nebraskatest.Start(t)
	devChannel(t, s)
	code, out, errOut := runAugen("push", "status", "--server", s.URL)
	if code != 0 || !strings.Contains(out, "amd64-usr channel(s): ") || !strings.Contains(out, "dev-channel") {
		t.Fatalf("push status without --channel: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runAugen("push", "status", "--server", s.URL, "--channel", "dev-chanel")
	if code != exitUsage || !strings.Contains(errOut, `channel "dev-chanel" (arch 1) does not exist`) || !strings.Contains(errOut, "hint: its amd64-usr channels: ") ||
		!strings.Contains(errOut, "dev-channel") {
		t.Fatalf("push status with a typo: exit %d\n%s", code, errOut)
	}
}
