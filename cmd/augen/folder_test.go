package main

import (
	"crypto"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/testutil"
)

// A release folder per variant, made once per test process (the keys,
// made by the first, are shared: "another build" and "another key" are
// the script's second keys).
var (
	foldersMu  sync.Mutex
	foldersDir string
	folders    = map[string]string{}
)

func folder(t *testing.T, arch string, env ...string) (dir, keys string) {
	t.Helper()
	foldersMu.Lock()
	defer foldersMu.Unlock()
	if foldersDir == "" {
		d, err := os.MkdirTemp("", "augen-folders-*")
		if err != nil {
			t.Fatal(err)
		}
		foldersDir = d
	}
	id := arch + strings.Join(env, ",")
	if folders[id] == "" {
		variant := "VARIANT=" + strings.NewReplacer("=", "-", ",", "_").Replace(id)
		folders[id] = testutil.Folder(t, foldersDir, "4799.0.0", arch, append([]string{variant}, env...)...)
	}
	return folders[id], filepath.Join(foldersDir, "keys")
}

// sbPolicy writes a policy trusting key a for everything and keys/sb.crt
// for Secure Boot.
func sbPolicy(t *testing.T, tmp, keys string) string {
	t.Helper()
	p := filepath.Join(tmp, "sb-policy.json")
	augen(t, "policy", "init", "--bundle-key", tmp+"/a.pub.pem", "--payload-key", tmp+"/a.pub.pem", "--secure-boot-cert", keys+"/sb.crt", "-o", p)
	return p
}

func releaseFolderArgs(tmp, dir, keys string) []string {
	return []string{"release", dir, "--signing-key", keys + "/buildbot.asc", "--secure-boot-cert", keys + "/sb.crt", "--key", "file:" + tmp + "/key-a.pem"}
}

// TestReleaseFolder: a folder as download_payloads leaves it (amd64 and
// arm64) gives a bundle with one extra payload per sysext, which verify
// accepts against a policy naming the Secure Boot certificate: each
// sysext checked against the /usr, the kernel's signer named.
func TestReleaseFolder(t *testing.T) {
	tmp, _ := fixtures(t)
	augen(t, "key", "pubkey", "file:"+tmp+"/key-a.pem", "-o", tmp+"/a.pub.pem")
	for _, arch := range []string{"amd64", "arm64"} {
		dir, keys := folder(t, arch)
		out := filepath.Join(tmp, arch+".tar")
		_, errOut := augen2(t, append(releaseFolderArgs(tmp, dir, keys), "-o", out)...)
		for _, want := range []string{"4 .sig files verified: TEST-ONLY Buildbot (Official Builds)", "kernel signed for Secure Boot by CN=TEST-ONLY sb", "2 sysext(s) checked against the /usr"} {
			if !strings.Contains(errOut, want) {
				t.Fatalf("%s: no %q in\n%s", arch, want, errOut)
			}
		}
		stdout := augen(t, "verify", out, "--policy", sbPolicy(t, tmp, keys), "--json")
		var rep struct {
			Valid    bool
			Board    string
			Payloads []struct {
				Name       string
				Kind       string
				SecureBoot *bundle.SecureBoot `json:"secure_boot"`
				Sysext     *bundle.Sysext
			}
		}
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, p := range rep.Payloads {
			switch {
			case p.Kind == "full" && p.SecureBoot != nil && p.SecureBoot.Subject == "CN=TEST-ONLY sb" && p.SecureBoot.TrustedBy != "":
				got[p.Name] = "secure boot"
			case p.Kind == "extra" && p.Sysext != nil && p.Sysext.Version == "4799.0.0":
				got[p.Name] = "sysext"
			}
		}
		if !rep.Valid || rep.Board != arch+"-usr" || len(got) != 3 || got["flatcar-docker.gz"] != "sysext" || got["oem-azure.gz"] != "sysext" || got["flatcar_production_update.gz"] != "secure boot" {
			t.Fatalf("%s: %s", arch, stdout)
		}
	}
	// Deltas from an older folder, for two partition sizes, applied by
	// verify on the old folder.
	dir, keys := folder(t, "amd64")
	foldersMu.Lock()
	old := testutil.Folder(t, foldersDir, "4798.0.0", "amd64", "VARIANT=old")
	foldersMu.Unlock()
	out := filepath.Join(tmp, "deltas.tar")
	augen(t, append(releaseFolderArgs(tmp, dir, keys), "--delta-from", "4798.0.0="+old, "--partition-size", "4MiB", "--partition-size", "8MiB", "-o", out)...)
	stdout := augen(t, "verify", out, "--policy", sbPolicy(t, tmp, keys), "--old", "4798.0.0="+old)
	for _, want := range []string{"delta-from-4798.0.0-for-4MiB.gz    delta rebuilt", "delta-from-4798.0.0-for-8MiB.gz    delta rebuilt"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("no %q in\n%s", want, stdout)
		}
	}
}

// TestReleaseFolderRefusals: each failure that breaks machines, refused
// before anything is written (exit 3), naming the file and the reason.
func TestReleaseFolderRefusals(t *testing.T) {
	tmp, _ := fixtures(t)
	for _, c := range []struct {
		name  string
		env   []string
		extra []string
		want  []string
	}{
		{"sysext of another build", []string{"SYSEXT_KEY=other"}, nil, []string{"flatcar-docker.raw", "another build", "TEST-ONLY sysext-other (SHA-256 "}},
		{"unsigned kernel", []string{"KERNEL_SIGNER=none"}, nil, []string{"flatcar_production_image.vmlinuz is not signed for Secure Boot"}},
		{"kernel of another key", []string{"KERNEL_SIGNER=other"}, nil, []string{"flatcar_production_image.vmlinuz", "CN=TEST-ONLY sb-other", "does not chain"}},
		{"extension-release of another version", []string{"SYSEXT_VERSION=4798.0.0"}, nil, []string{"flatcar-docker.raw", "VERSION_ID=4798.0.0, but the /usr is VERSION_ID=4799.0.0"}},
		{"missing .sig", []string{"NO_SIG=oem-azure.raw"}, nil, []string{"oem-azure.raw has no signature"}},
		{"bad .sig", []string{"BAD_SIG=flatcar_production_image.vmlinuz"}, nil, []string{"flatcar_production_image.vmlinuz.sig does not verify"}},
		{"expired subkey", []string{"SIGN_SUBKEY=expired"}, nil, []string{"flatcar_production_update.bin.bz2 is signed by", "expired on 2025-03-07", "--allow-expired-signing-key"}},
	} {
		dir, keys := folder(t, "amd64", c.env...)
		out := filepath.Join(tmp, "refused.tar")
		code, _, errOut := runAugen(append(append(releaseFolderArgs(tmp, dir, keys), c.extra...), "-o", out)...)
		if code != exitVerify {
			t.Errorf("%s: exit %d\n%s", c.name, code, errOut)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s: no %q in\n%s", c.name, w, errOut)
			}
		}
		if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
			for _, e := range ents {
				if strings.Contains(e.Name(), "refused") || strings.HasPrefix(e.Name(), ".augen") {
					t.Fatalf("%s: %s left behind", c.name, e.Name())
				}
			}
		}
	}
	// The kernel of another build (signed, its .sig good) in the folder:
	// its dm-verity root hash is another /usr's.
	good, keys := folder(t, "amd64")
	mixed := filepath.Join(t.TempDir(), "amd64-usr", "4799.0.0")
	if err := os.CopyFS(mixed, os.DirFS(good)); err != nil {
		t.Fatal(err)
	}
	foldersMu.Lock()
	old := testutil.Folder(t, foldersDir, "4798.0.0", "amd64", "VARIANT=old")
	foldersMu.Unlock()
	for _, f := range []string{"flatcar_production_image.vmlinuz", "flatcar_production_image.vmlinuz.sig"} {
		os.Remove(filepath.Join(mixed, f))
		if err := os.Link(filepath.Join(old, f), filepath.Join(mixed, f)); err != nil {
			t.Fatal(err)
		}
	}
	code, _, errOut := runAugen(append(releaseFolderArgs(tmp, mixed, keys), "-o", tmp+"/mixed.tar")...)
	if code != exitVerify || !strings.Contains(errOut, "flatcar_production_image.vmlinuz and flatcar_production_update.bin.bz2") || !strings.Contains(errOut, "this update would not boot") {
		t.Fatalf("another build's kernel: exit %d\n%s", code, errOut)
	}
	// An old build's signatures, re-released on purpose: accepted, said.
	dir, _ := folder(t, "amd64", "SIGN_SUBKEY=expired")
	_, errOut = augen2(t, append(releaseFolderArgs(tmp, dir, keys), "--allow-expired-signing-key", "-o", tmp+"/old.tar")...)
	if !strings.Contains(errOut, "which has expired or was revoked since (allowed by --allow-expired-signing-key)") {
		t.Fatalf("allowed expired subkey:\n%s", errOut)
	}
	// --official: no --signing-key, no Secure Boot: refused before work.
	code, _, errOut = runAugen("release", good, "--official", "--key", "file:"+tmp+"/key-a.pem", "-o", tmp+"/o.tar")
	if code != exitUsage || !strings.Contains(errOut, "--official") {
		t.Fatalf("official without checks: exit %d\n%s", code, errOut)
	}
}

// TestVerifyRefusesFolderFailures: bundles made with bundle create from
// payloads built one by one (payload build), signed by a build that
// checks nothing, are refused by verify: a sysext of another build, an
// extension-release for another version, a kernel unsigned or signed by
// another key when the policy names the Secure Boot certificate. bundle
// create itself refuses them too.
func TestVerifyRefusesFolderFailures(t *testing.T) {
	tmp, _ := fixtures(t)
	augen(t, "key", "pubkey", "file:"+tmp+"/key-a.pem", "-o", tmp+"/a.pub.pem")
	good, keys := folder(t, "amd64")
	policy := sbPolicy(t, tmp, keys)
	build := func(dir, name string) (full, docker string) {
		full, docker = filepath.Join(tmp, name+"-full.gz"), filepath.Join(tmp, name, "flatcar-docker.gz")
		os.MkdirAll(filepath.Dir(docker), 0o755)
		augen(t, "payload", "build", "--image", dir+"/flatcar_production_update.bin.bz2", "--kernel", dir+"/flatcar_production_image.vmlinuz", "--key", "file:"+tmp+"/key-a.pem", "-o", full)
		augen(t, "payload", "build", "--extra", "--image", dir+"/flatcar-docker.raw", "--key", "file:"+tmp+"/key-a.pem", "-o", docker)
		return full, docker
	}
	goodFull, goodDocker := build(good, "good")
	// The good payloads bundle and verify.
	augen(t, "bundle", "create", "--version", "4799.0.0", "--payload", goodFull, "--extra", goodDocker, "--payload-key", tmp+"/a.pub.pem",
		"--secure-boot-cert", keys+"/sb.crt", "--key", "file:"+tmp+"/key-a.pem", "-o", tmp+"/good.tar")
	augen(t, "verify", tmp+"/good.tar", "--policy", policy)
	for _, c := range []struct {
		name        string
		env         []string
		full, extra bool // which payload comes from the variant
		want        string
	}{
		{"sysext of another build", []string{"SYSEXT_KEY=other"}, false, true, "flatcar-docker.gz: sysext: its root hash is signed by CN=TEST-ONLY sysext-other"},
		{"extension-release of another version", []string{"SYSEXT_VERSION=4798.0.0"}, true, true, "VERSION_ID=4798.0.0, but the /usr is VERSION_ID=4799.0.0"},
		{"unsigned kernel", []string{"KERNEL_SIGNER=none"}, true, false, "flatcar_production_update.gz: secure boot: the kernel is not signed for Secure Boot"},
		{"kernel of another key", []string{"KERNEL_SIGNER=other"}, true, false, "secure boot: authenticode: signed by a certificate that is not trusted: CN=TEST-ONLY sb-other"},
	} {
		dir, _ := folder(t, "amd64", c.env...)
		full, docker := build(dir, strings.ReplaceAll(c.name, " ", "-"))
		if !c.full {
			full = goodFull
		}
		if !c.extra {
			docker = goodDocker
		}
		args := []string{"bundle", "create", "--version", "4799.0.0", "--payload", full, "--extra", docker, "--payload-key", tmp + "/a.pub.pem",
			"--secure-boot-cert", keys + "/sb.crt", "--key", "file:" + tmp + "/key-a.pem", "-o", tmp + "/c.tar"}
		if code, _, errOut := runAugen(args...); code != exitVerify {
			t.Errorf("%s: bundle create: exit %d\n%s", c.name, code, errOut)
		}
		// A build that checks nothing bundles them anyway.
		out := filepath.Join(tmp, "unchecked.tar")
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		_, err = bundle.Build(f, bundle.BuildOptions{Version: "4799.0.0", Board: "amd64-usr", Augen: "test", MTime: time.Unix(0, 0),
			Payloads: []bundle.PayloadFile{{Path: full, Name: "flatcar_production_update.gz", Kind: bundle.KindFull},
				{Path: docker, Name: "flatcar-docker.gz", Kind: bundle.KindExtra}},
			PayloadKeys: []crypto.PublicKey{testutil.Key(t, "a").Public()}, Signers: []crypto.Signer{testutil.Key(t, "a")}})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		code, stdout, errOut := runAugen("verify", out, "--policy", policy)
		if code != exitVerify || !strings.Contains(stdout+errOut, c.want) {
			t.Errorf("%s: verify: exit %d, want %q\n%s%s", c.name, code, c.want, stdout, errOut)
		}
	}
}

// augen2 runs augen, which must succeed, and returns what it printed.
func augen2(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	code, stdout, stderr := runAugen(args...)
	if code != 0 {
		t.Fatalf("augen %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	return stdout, stderr
}
