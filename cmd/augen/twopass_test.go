package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/augen-project/augen/signer"
)

func augen(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("augen %s: exit %d\n%s", strings.Join(args, " "), code, stderr.String())
	}
	return stdout.String()
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s and %s differ", a, b)
	}
}

// Two-pass signing of delta_generator's unsigned payload, with the
// signatures openssl made, gives exactly delta_generator's signed payload.
func TestTwoPassMatchesGenerator(t *testing.T) {
	tmp, vec := fixtures(t)
	augen(t, "payload", "digest", vec+"/full-unsigned.bin", "--pubkey", vec+"/TEST-ONLY-key-b.pub.pem", "--pubkey", vec+"/TEST-ONLY-key-a.pub.pem",
		"-o", tmp+"/prepared.bin", "--digest-out", tmp+"/digest")
	sameFile(t, tmp+"/digest", vec+"/full-2sig.hash")
	augen(t, "payload", "attach", tmp+"/prepared.bin", "--signature", vec+"/full-2sig.sig1", "--pubkey", vec+"/TEST-ONLY-key-b.pub.pem",
		"--signature", vec+"/full-2sig.sig2", "--pubkey", vec+"/TEST-ONLY-key-a.pub.pem", "-o", tmp+"/signed.bin")
	sameFile(t, tmp+"/signed.bin", vec+"/full-2sig-signed.bin")
}

// Two-pass signing with two keys gives the same bytes as one-pass signing.
func TestTwoPassEqualsOnePass(t *testing.T) {
	tmp, vec := fixtures(t)
	keys := []string{"file:" + tmp + "/key-b.pem", "file:" + tmp + "/key-a.pem"}
	pubs := []string{vec + "/TEST-ONLY-key-b.pub.pem", vec + "/TEST-ONLY-key-a.pub.pem"}
	augen(t, "payload", "build", "--image", tmp+"/usr-new.bin", "--kernel", vec+"/vmlinuz-new", "--key", keys[0], "--key", keys[1], "-o", tmp+"/one.gz")
	augen(t, "payload", "build", "--image", tmp+"/usr-new.bin", "--kernel", vec+"/vmlinuz-new", "-o", tmp+"/unsigned.gz")
	augen(t, "payload", "digest", tmp+"/unsigned.gz", "--pubkey", pubs[0], "--pubkey", pubs[1], "-o", tmp+"/prepared.gz", "--digest-out", tmp+"/digest")
	digest, err := os.ReadFile(tmp + "/digest")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"payload", "attach", tmp + "/prepared.gz", "-o", tmp + "/two.gz"}
	for i, k := range keys {
		s, err := signer.Open(context.Background(), k, nil)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := s.Sign(rand.Reader, digest, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(tmp, "sig"+string(rune('1'+i)))
		if err := os.WriteFile(p, sig, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--signature", p, "--pubkey", pubs[i])
	}
	augen(t, args...)
	sameFile(t, tmp+"/one.gz", tmp+"/two.gz")
	out := augen(t, "payload", "verify", tmp+"/two.gz", "--pubkey", pubs[0], "--pubkey", pubs[1], "--image", tmp+"/usr-new.bin", "--kernel", vec+"/vmlinuz-new")
	if !strings.Contains(out, ": OK (full payload") {
		t.Fatalf("verify said %q", out)
	}
}

// A signature of the wrong size for what was reserved is refused.
func TestAttachRefusesWrongSize(t *testing.T) {
	tmp, vec := fixtures(t)
	augen(t, "payload", "digest", vec+"/full-unsigned.bin", "--signature-size", "256", "-o", tmp+"/prepared.bin", "--digest-out", tmp+"/digest")
	if err := os.WriteFile(tmp+"/long.sig", make([]byte, 257), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"payload", "attach", tmp + "/prepared.bin", "--signature", tmp + "/long.sig", "--pubkey", vec + "/TEST-ONLY-key-a.pub.pem", "-o", tmp + "/out.bin"}, nil, &bytes.Buffer{}, &stderr)
	if code != exitFailure || !strings.Contains(stderr.String(), "reserved") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(tmp + "/out.bin"); err == nil {
		t.Fatal("output written")
	}
}

// "augen payload build" reproduces delta_generator's full payloads byte for
// byte, with and without a kernel and a key.
func TestBuildReproducesDeltaGenerator(t *testing.T) {
	tmp, vec := fixtures(t)
	for _, tc := range []struct {
		vector string
		args   []string
	}{
		{"full-signed.bin", []string{"--kernel", vec + "/vmlinuz-new", "--key", "file:" + tmp + "/key-a.pem"}},
		{"full-nokernel-signed.bin", []string{"--key", "file:" + tmp + "/key-a.pem"}},
		{"full-unsigned.bin", []string{"--kernel", vec + "/vmlinuz-new"}},
	} {
		out := filepath.Join(tmp, tc.vector)
		augen(t, append([]string{"payload", "build", "--image", tmp + "/usr-new.bin", "-o", out}, tc.args...)...)
		sameFile(t, out, filepath.Join(vec, tc.vector))
	}
}
