package pubkey

import (
	"os"
	"strings"
	"testing"
)

func TestLoadAndFingerprint(t *testing.T) {
	k, err := Load("../testdata/vectors/TEST-ONLY-key-a.pub.pem")
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := Fingerprint(k)
	if fp != "5783a7e03b32d98eef74a928ca9c69b11c9c3a832ee9f4717612e2cb64558f00" {
		t.Fatalf("fingerprint %s", fp)
	}
	b, _ := PEM(k)
	orig, _ := os.ReadFile("../testdata/vectors/TEST-ONLY-key-a.pub.pem")
	if string(b) != string(orig) {
		t.Fatal("PEM does not round-trip")
	}
	for _, tc := range []struct{ in, want string }{
		{"hello", "no PEM block"},
		{string(orig) + "junk", "unexpected data"},
		{strings.ReplaceAll(string(orig), "PUBLIC KEY", "CERTIFICATE"), "not a public key"},
	} {
		if _, err := Parse([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v", tc.want, err)
		}
	}
	priv, _ := os.ReadFile("../testdata/vectors/TEST-ONLY-key-a.pem")
	if _, err := Parse(priv); err == nil || !strings.Contains(err.Error(), "private key") {
		t.Errorf("private key accepted as public: %v", err)
	}
}
