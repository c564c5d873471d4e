package main

import (
	"bytes"
	"context"
	"crypto"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/pbzip2"
	"github.com/augen-project/augen/internal/testutil"
)

// uncheckedBundle signs a bundle of files with the bundle library alone,
// as a build that checks nothing would: verify must find what is wrong.
func uncheckedBundle(t *testing.T, out, version, board string, files []bundle.PayloadFile) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := bundle.Build(f, bundle.BuildOptions{Version: version, Board: board, Payloads: files, Augen: "test", MTime: time.Unix(1258628400, 0),
		PayloadKeys: []crypto.PublicKey{testutil.Key(t, "a").Public()}, Signers: []crypto.Signer{testutil.Key(t, "b")}}); err != nil {
		t.Fatal(err)
	}
}

// verify ties a full payload's kernel to its /usr and its board, on
// bundles made by a build that does not check them: the sample's
// own kernel passes; released for arm64-usr, a kernel whose dm-verity root
// hash is another /usr's, or no kernel at all are refused, with the reason
// printed.
func TestVerifyKernelMatchesUsrAndBoard(t *testing.T) {
	tmp, vec := fixtures(t)
	img := root + "image/flatcar_test_image.bin.bz2"
	t.Setenv("SOURCE_DATE_EPOCH", "1258628400")
	augen(t, "unpack", img, "--usr-size", "4MiB", "-o", tmp+"/u")
	k, err := os.ReadFile(tmp + "/u/vmlinuz")
	if err != nil {
		t.Fatal(err)
	}
	other := append([]byte{}, k...)
	copy(other[64:], strings.Repeat("0", 64)) // another /usr's root hash
	if err := os.WriteFile(tmp+"/other-vmlinuz", other, 0o644); err != nil {
		t.Fatal(err)
	}
	augen(t, "policy", "init", "--bundle-key", vec+"/TEST-ONLY-key-b.pub.pem", "--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "-o", tmp+"/policy.json")
	root, _ := os.ReadFile(root + "image/verity-root-hash")
	for _, tc := range []struct {
		name, board string
		kernel      []string
		want        string // "" for OK
	}{
		{"own kernel", "amd64-usr", []string{"--kernel", tmp + "/u/vmlinuz"}, ""},
		{"wrong board", "arm64-usr", []string{"--kernel", tmp + "/u/vmlinuz"}, "board: the statement's board is arm64-usr, but the kernel is an amd64 kernel"},
		{"another /usr's kernel", "amd64-usr", []string{"--kernel", tmp + "/other-vmlinuz"}, "kernel: the kernel does not match its /usr"},
		{"no kernel", "amd64-usr", nil, "kernel: the full payload carries no kernel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			augen(t, append([]string{"payload", "build", "--image", tmp + "/u/usr.bin", "--key", "file:" + tmp + "/key-a.pem", "-o", d + "/flatcar_production_update.gz"}, tc.kernel...)...)
			uncheckedBundle(t, d+"/release.tar", "4459.2.1", tc.board, []bundle.PayloadFile{{Path: d + "/flatcar_production_update.gz", Name: "flatcar_production_update.gz", Kind: bundle.KindFull}})
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"verify", "--policy", tmp + "/policy.json", d + "/release.tar", "--json"}, nil, &stdout, &stderr)
			if tc.want == "" {
				if code != 0 || !strings.Contains(stdout.String(), `"verity_root_hash": "`+strings.TrimSpace(string(root))+`"`) || !strings.Contains(stdout.String(), `"kernel_arch": "amd64"`) {
					t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
				}
				return
			}
			code = run(context.Background(), []string{"verify", "--policy", tmp + "/policy.json", d + "/release.tar"}, nil, &stdout, &stderr)
			if code != exitVerify || !strings.Contains(stdout.String()+stderr.String(), tc.want) {
				t.Fatalf("exit %d, want the reason %q:\n%s%s", code, tc.want, stdout.String(), stderr.String())
			}
		})
	}
}

// verify --image says why it failed, with the exit status of the cause: a
// missing image is exit 1, a bad OpenPGP signature or a forgotten
// --usr-size exit 3, each with its reason (it used to print only "1
// check(s) failed").
func TestVerifyImageFailuresSayWhy(t *testing.T) {
	tmp, vec := fixtures(t)
	img := root + "image/flatcar_test_image.bin.bz2"
	t.Setenv("SOURCE_DATE_EPOCH", "1258628400")
	augen(t, "release", img, "--usr-size", "4MiB", "--version", "4459.2.1", "--key", "file:"+tmp+"/key-a.pem", "--bundle-key", "file:"+tmp+"/key-b.pem", "-o", tmp+"/r.tar")
	augen(t, "policy", "init", "--bundle-key", vec+"/TEST-ONLY-key-b.pub.pem", "--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "-o", tmp+"/p.json")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--image", tmp + "/missing.bin.bz2", "--usr-size", "4MiB"}, exitUsage, "no such file"},
		{[]string{"--image", img}, exitVerify, "give --usr-size 6MiB or less"},
		{[]string{"--image", img, "--usr-size", "4MiB", "--signature", root + "image/other-key.sig", "--signing-key", root + "image/TEST-ONLY-buildbot.asc"}, exitVerify, "does not verify"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"verify", "--policy", tmp + "/p.json", tmp + "/r.tar"}, tc.args...), nil, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, want %d and %q:\n%s", tc.args, code, tc.code, tc.want, stderr.String())
		}
	}
}

// release takes the board from the image (its kernel's architecture) and
// refuses a --board the image contradicts, before anything is written:
// the amd64 sample released as arm64-usr is refused.
func TestReleaseBoardFromImage(t *testing.T) {
	tmp, _ := fixtures(t)
	img := root + "image/flatcar_test_image.bin.bz2"
	args := []string{"release", img, "--usr-size", "4MiB", "--version", "4459.2.1", "--key", "file:" + tmp + "/key-a.pem", "--bundle-key", "file:" + tmp + "/key-b.pem"}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append(args, "--board", "arm64-usr", "-o", tmp+"/arm.tar"), nil, &stdout, &stderr)
	if code != exitVerify || !strings.Contains(stderr.String(), "--board arm64-usr, but the image is for amd64-usr (its /usr/share/flatcar/release says so)") {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	if _, err := os.Stat(tmp + "/arm.tar"); err == nil {
		t.Fatal("the refused release was written")
	}
	stderr.Reset()
	if code := run(context.Background(), append(args, "-o", tmp+"/r.tar"), nil, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "amd64-usr 4459.2.1") {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
}

// --old takes what users have: a plain or bzip2 USR image, or a
// production image (unpacked, its kernel used), for payload verify and
// verify alike; --image of payload inspect too.
func TestOldTakesUSRAndProductionImages(t *testing.T) {
	tmp, vec := fixtures(t)
	img := root + "image/flatcar_test_image.bin.bz2"
	oldImg := root + "image/flatcar_test_image-4459.1.0.bin.bz2"
	t.Setenv("SOURCE_DATE_EPOCH", "1258628400")
	augen(t, "unpack", img, "--usr-size", "4MiB", "-o", tmp+"/u")
	usr := testutil.Read(t, tmp+"/u/usr.bin")
	if err := os.WriteFile(tmp+"/usr.bin.bz2", pbzip2.Compress(usr, pbzip2.Stream), 0o644); err != nil {
		t.Fatal(err)
	}
	augen(t, "release", img, "--usr-size", "4MiB", "--version", "4459.2.1", "--key", "file:"+tmp+"/key-a.pem",
		"--bundle-key", "file:"+tmp+"/key-b.pem", "--delta-from", "4459.1.0="+oldImg, "-o", tmp+"/r.tar")
	augen(t, "policy", "init", "--bundle-key", vec+"/TEST-ONLY-key-b.pub.pem", "--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "-o", tmp+"/p.json")
	augen(t, "payload", "build", "--old", tmp+"/u/usr.bin", "--old-kernel", tmp+"/u/vmlinuz", "--image", tmp+"/u/usr.bin", "--kernel", tmp+"/u/vmlinuz",
		"--key", "file:"+tmp+"/key-a.pem", "-o", tmp+"/d.gz")
	for _, old := range [][]string{
		{"--old", tmp + "/usr.bin.bz2", "--old-kernel", tmp + "/u/vmlinuz"},
		{"--old", img, "--usr-size", "4MiB"},
	} {
		out := augen(t, append([]string{"payload", "verify", tmp + "/d.gz", "--pubkey", vec + "/TEST-ONLY-key-a.pub.pem"}, old...)...)
		if !strings.Contains(out, "OK (delta payload") {
			t.Fatalf("%v: %s", old, out)
		}
	}
	augen(t, "unpack", oldImg, "--usr-size", "4MiB", "-o", tmp+"/o")
	oldUSR := testutil.Read(t, tmp+"/o/usr.bin")
	if err := os.WriteFile(tmp+"/old-usr.bin.bz2", pbzip2.Compress(oldUSR, pbzip2.Stream), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, old := range []string{"4459.1.0=" + tmp + "/old-usr.bin.bz2," + tmp + "/o/vmlinuz", "4459.1.0=" + oldImg} {
		out := augen(t, "verify", "--policy", tmp+"/p.json", tmp+"/r.tar", "--old", old, "--usr-size", "4MiB")
		if !strings.Contains(out, "OK: amd64-usr 4459.2.1") || strings.Contains(out, "NOT applied") {
			t.Fatalf("--old %s: %s", old, out)
		}
	}
	if out := augen(t, "payload", "inspect", tmp+"/d.gz", "--image", img, "--usr-size", "4MiB"); !strings.Contains(out, "unchanged") {
		t.Fatalf("inspect --image of a production image: %s", out)
	}
}

// verify and payload verify show their progress off a terminal with
// --progress=always (a CI log), per member and stage.
func TestVerifyProgressOffTerminal(t *testing.T) {
	tmp, vec := fixtures(t)
	img := root + "image/flatcar_test_image.bin.bz2"
	t.Setenv("SOURCE_DATE_EPOCH", "1258628400")
	augen(t, "release", img, "--usr-size", "4MiB", "--version", "4459.2.1", "--key", "file:"+tmp+"/key-a.pem", "--bundle-key", "file:"+tmp+"/key-b.pem", "-o", tmp+"/r.tar")
	augen(t, "policy", "init", "--bundle-key", vec+"/TEST-ONLY-key-b.pub.pem", "--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "-o", tmp+"/p.json")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"verify", "--policy", tmp + "/p.json", tmp + "/r.tar", "--progress=always"}, []string{"applying flatcar_production_update.gz: 100%", "hashing flatcar_production_update.gz: 100%"}},
		{[]string{"payload", "verify", vec + "/full-signed.bin", "--pubkey", vec + "/TEST-ONLY-key-a.pub.pem", "--progress=always"}, []string{"applying: 100%", "hashing: 100%"}},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tc.args, nil, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d\n%s", tc.args, code, stderr.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%v: no %q in\n%s", tc.args[:2], w, stderr.String())
			}
		}
	}
}

// A delta labelled with the wrong version (bundle create does not read the
// images) is refused by verify once its old image is given: the old /usr
// says which release it is.
func TestVerifyDeltaLabel(t *testing.T) {
	tmp, vec := fixtures(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1258628400")
	unpackReleases(t, tmp, true)
	augen(t, "payload", "build", "--old", tmp+"/o/usr.bin", "--old-kernel", tmp+"/o/vmlinuz", "--image", tmp+"/n/usr.bin", "--kernel", tmp+"/n/vmlinuz",
		"--key", "file:"+tmp+"/key-a.pem", "-o", tmp+"/delta.gz")
	uncheckedBundle(t, tmp+"/r.tar", "4459.2.1", "amd64-usr", []bundle.PayloadFile{
		{Path: tmp + "/flatcar_production_update.gz", Name: "flatcar_production_update.gz", Kind: bundle.KindFull},
		{Path: tmp + "/delta.gz", Name: "delta-from-4400.0.0.gz", Kind: bundle.KindDelta, FromVersion: "4400.0.0"}})
	augen(t, "policy", "init", "--bundle-key", vec+"/TEST-ONLY-key-b.pub.pem", "--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "-o", tmp+"/p.json")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"verify", "--policy", tmp + "/p.json", tmp + "/r.tar", "--old", "4400.0.0=" + tmp + "/o/usr.bin," + tmp + "/o/vmlinuz"}, nil, &stdout, &stderr)
	if code != exitVerify || !strings.Contains(stderr.String(), "the old image given for 4400.0.0") || !strings.Contains(stderr.String(), "is release 4459.1.0") {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
}

// bundle create refuses, before anything is written, the bundles that
// could never verify: a --board or --version the full payload contradicts,
// a delta given as the full payload, a kernel that does not match its
// /usr, a payload key that verifies no payload; without --board the board
// is the kernel's.
func TestBundleCreateChecksBeforeSigning(t *testing.T) {
	tmp, vec := fixtures(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1258628400")
	unpackReleases(t, tmp, false)
	k, _ := os.ReadFile(tmp + "/n/vmlinuz")
	copy(k[64:], strings.Repeat("0", 64))
	os.WriteFile(tmp+"/bad-vmlinuz", k, 0o644)
	build := func(out string, args ...string) {
		augen(t, append(append([]string{"payload", "build"}, args...), "--key", "file:"+tmp+"/key-a.pem", "-o", tmp+"/"+out)...)
	}
	build("full.gz", "--image", tmp+"/n/usr.bin", "--kernel", tmp+"/n/vmlinuz")
	build("bad.gz", "--image", tmp+"/n/usr.bin", "--kernel", tmp+"/bad-vmlinuz")
	build("delta.gz", "--old", tmp+"/o/usr.bin", "--old-kernel", tmp+"/o/vmlinuz", "--image", tmp+"/n/usr.bin", "--kernel", tmp+"/n/vmlinuz")
	create := func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"bundle", "create", "--key", "file:" + tmp + "/key-b.pem", "-o", tmp + "/r.tar"}, args...), nil, &stdout, &stderr)
		return code, stderr.String()
	}
	pk := vec + "/TEST-ONLY-key-a.pub.pem"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--version", "4459.2.1", "--board", "arm64-usr", "--payload", tmp + "/full.gz", "--payload-key", pk}, "--board arm64-usr, but the full payload's kernel is an amd64 kernel"},
		{[]string{"--version", "4459.3.0", "--payload", tmp + "/full.gz", "--payload-key", pk}, "--version 4459.3.0, but the full payload's /usr says 4459.2.1"},
		{[]string{"--version", "4459.2.1", "--payload", tmp + "/delta.gz", "--payload-key", pk}, "is a delta payload, given as the full payload"},
		{[]string{"--version", "4459.2.1", "--payload", tmp + "/bad.gz", "--payload-key", pk}, "the kernel does not match its /usr"},
		{[]string{"--version", "4459.2.1", "--payload", tmp + "/full.gz", "--payload-key", vec + "/TEST-ONLY-key-b.pub.pem"}, "signature"},
	} {
		code, errOut := create(tc.args...)
		if code != exitVerify || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, want %q:\n%s", tc.args, code, tc.want, errOut)
		}
		if _, err := os.Stat(tmp + "/r.tar"); err == nil {
			t.Fatalf("%v: a refused bundle was written", tc.args)
		}
	}
	if code, errOut := create("--version", "4459.2.1", "--payload", tmp+"/full.gz", "--delta-from", "4459.1.0="+tmp+"/delta.gz", "--payload-key", pk); code != 0 || !strings.Contains(errOut, "amd64-usr 4459.2.1") {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
}
