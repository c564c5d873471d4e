package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
)

// clearsignWith writes content clearsigned (as Flatcar's DIGESTS.asc) by a
// new TEST-ONLY OpenPGP key, and that key's public part, into dir.
func clearsignWith(t *testing.T, dir, name string, content []byte) (signed, pub string) {
	t.Helper()
	e, err := openpgp.NewEntity("TEST-ONLY buildbot "+name, "", "test@invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w, err := clearsign.Encode(&out, e.PrivateKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(content)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	signed, pub = dir+"/"+name+".DIGESTS.asc", dir+"/"+name+".asc"
	if err := os.WriteFile(signed, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var kb bytes.Buffer
	aw, err := armor.Encode(&kb, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(aw); err != nil {
		t.Fatal(err)
	}
	aw.Close()
	if err := os.WriteFile(pub, kb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return signed, pub
}

// "Official" means signed: a DIGESTS file anyone could have written beside
// the image is reported as unsigned and does not satisfy --official; a
// clearsigned DIGESTS.asc is verified against --signing-key before the
// image is read, and does.
func TestSignedDigests(t *testing.T) {
	tmp, _ := fixtures(t)
	img := root + "image/flatcar_test_image.bin.bz2"
	unsigned := root + "image/flatcar_test_image.bin.bz2.DIGESTS"
	content, err := os.ReadFile(unsigned)
	if err != nil {
		t.Fatal(err)
	}
	signed, key := clearsignWith(t, tmp, "ci", content)
	_, otherKey := clearsignWith(t, tmp, "other", content)
	// Forged ones: a header and no signature; a signed file changed after
	// signing (one SHA-512 digit).
	forged := tmp + "/forged.DIGESTS.asc"
	os.WriteFile(forged, []byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"+string(content)), 0o644)
	sb, _ := os.ReadFile(signed)
	i := bytes.Index(sb, []byte("# SHA512 HASH\n")) + len("# SHA512 HASH\n")
	sb[i] ^= 1
	changed := tmp + "/changed.DIGESTS.asc"
	os.WriteFile(changed, sb, 0o644)

	// payload build --from-image (without --official) says what it checked.
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unsigned", []string{"--digests", unsigned}, 0, "DIGESTS (unsigned) matched, but nothing signed proves it is the image CI built"},
		{"signed", []string{"--digests", signed, "--signing-key", key}, 0, "input checks: " + img + ": DIGESTS signed by TEST-ONLY buildbot ci <test@invalid> matched"},
		{"signed, other key", []string{"--digests", signed, "--signing-key", otherKey}, exitVerify, "does not verify: it was not made by any key in " + otherKey},
		{"signed, no key", []string{"--digests", signed}, exitVerify, "is signed: give the key it must come from (--signing-key)"},
		{"no signature", []string{"--digests", forged, "--signing-key", key}, exitVerify, "not a valid clearsigned message"},
		{"changed after signing", []string{"--digests", changed, "--signing-key", key}, exitVerify, "the OpenPGP signature of " + changed + " does not verify"},
		{"key without anything signed", []string{"--digests", unsigned, "--signing-key", key}, exitUsage, "--signing-key checks --signature or a signed DIGESTS file"},
	} {
		args := append([]string{"payload", "build", "--from-image", img, "--usr-size", "4MiB", "-o", tmp + "/p.gz"}, c.args...)
		code, _, errOut := runAugen(args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, want %d and %q\n%s", c.name, code, c.code, c.want, errOut)
		}
		os.Remove(tmp + "/p.gz")
	}
	// unpack reports the check.
	out := augen(t, "unpack", img, "--usr-size", "4MiB", "--digests", unsigned, "-o", tmp+"/u")
	if !strings.Contains(out, "checks    DIGESTS (unsigned) matched") {
		t.Errorf("unpack:\n%s", out)
	}
	// --official takes only what is signed.
	str := func(s string) *string { return &s }
	for _, c := range []struct {
		name      string
		uf        unpackFlags
		wantError string
	}{
		{"unsigned DIGESTS", unpackFlags{signature: str(""), digests: str(unsigned)}, "is not signed: an unsigned DIGESTS file proves nothing"},
		{"nothing", unpackFlags{signature: str(""), digests: str("")}, "--official needs the CI image's OpenPGP signature checked"},
		{"DIGESTS.asc", unpackFlags{signature: str(""), digests: str(signed)}, ""},
		{"signature", unpackFlags{signature: str(img + ".sig"), digests: str("")}, ""},
	} {
		err := officialImageChecked(true, &c.uf)
		if c.wantError == "" && err != nil || c.wantError != "" && (err == nil || !strings.Contains(err.Error(), c.wantError)) {
			t.Errorf("--official with %s: %v", c.name, err)
		}
	}
}
