package sysext

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/augen-project/augen/internal/authenticode"
	"github.com/augen-project/augen/internal/testutil"
)

const version = "4799.0.0"

func host(t *testing.T, folder, board string) *Host {
	t.Helper()
	usr := testutil.Unbzip2(t, filepath.Join(folder, "flatcar_production_update.bin.bz2"))
	h, err := ReadHost(context.Background(), bytes.NewReader(usr), int64(len(usr)), board)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func check(t *testing.T, p string, h *Host) (*Image, error) {
	t.Helper()
	b := testutil.Read(t, p)
	return Check(context.Background(), bytes.NewReader(b), int64(len(b)), strings.TrimSuffix(filepath.Base(p), ".raw"), h)
}

// dissect is what systemd-dissect says of an image: whether it would
// use it as a system extension, and the architecture of its root.
func dissect(t *testing.T, p string) (bool, string) {
	t.Helper()
	testutil.RequireTools(t, "systemd-dissect")
	out, err := exec.Command("systemd-dissect", "--json=short", p).Output()
	if err != nil {
		t.Skipf("systemd-dissect cannot read images here (it needs a loop device): %v", err)
	}
	var d struct {
		UseSystemExtension bool
		Mounts             []struct{ Designator, Architecture, Verity string }
	}
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatal(err)
	}
	for _, m := range d.Mounts {
		if m.Designator == "root" {
			if m.Verity != "signed" {
				t.Fatalf("systemd-dissect: verity %q", m.Verity)
			}
			return d.UseSystemExtension, m.Architecture
		}
	}
	return d.UseSystemExtension, ""
}

// TestFolderSysexts: the sysexts of a folder (EROFS with lz4 and
// uncompressed, amd64 and arm64) pass against their own /usr, with what
// systemd-dissect reads of them; each fails against the other
// architecture's machines.
func TestFolderSysexts(t *testing.T) {
	out := t.TempDir()
	for _, arch := range []string{"amd64", "arm64"} {
		folder := testutil.Folder(t, out, version, arch)
		h := host(t, folder, arch+"-usr")
		if len(h.Certs) != 1 || h.VersionID != version || h.ID != "flatcar" {
			t.Fatalf("host %+v", h)
		}
		sysCert := h.Certs[0]
		for _, name := range []string{"flatcar-docker", "oem-azure"} {
			p := filepath.Join(folder, name+".raw")
			img, err := check(t, p, h)
			if err != nil {
				t.Fatalf("%s %s: %v", arch, name, err)
			}
			if img.Certificate != authenticode.Fingerprint(sysCert) || img.Version != version || img.Filesystem != "erofs" ||
				img.ExtensionRelease != "/usr/lib/extension-release.d/extension-release."+name {
				t.Fatalf("%+v", img)
			}
			if use, a := dissect(t, p); !use || a != img.Architecture {
				t.Fatalf("systemd-dissect: extension %v, architecture %q; augen: %s", use, a, img.Architecture)
			}
			other := *h
			other.Architecture = map[string]string{"x86-64": "arm64", "arm64": "x86-64"}[h.Architecture]
			if _, err := check(t, p, &other); !errors.Is(err, ErrSysext) || !strings.Contains(err.Error(), "but the machines are") {
				t.Fatalf("other architecture: %v", err)
			}
		}
	}
}

// TestRefusals: a sysext of another build (both fingerprints named), one
// whose extension-release names another version, one renamed (systemd
// reads the file named after the image: systemd-dissect does not take it
// as an extension either), and damaged ones.
func TestRefusals(t *testing.T) {
	out := t.TempDir()
	good := testutil.Folder(t, out, version, "amd64")
	h := host(t, good, "amd64-usr")
	docker := filepath.Join(good, "flatcar-docker.raw")

	other := testutil.Folder(t, t.TempDir(), version, "amd64", "SYSEXT_KEY=other")
	_, err := check(t, filepath.Join(other, "flatcar-docker.raw"), h)
	if !errors.Is(err, ErrSysext) || !strings.Contains(err.Error(), "another build") || !strings.Contains(err.Error(), authenticode.Fingerprint(h.Certs[0])) ||
		!strings.Contains(err.Error(), "TEST-ONLY sysext-other (SHA-256 ") {
		t.Fatalf("another build: %v", err)
	}
	older := testutil.Folder(t, t.TempDir(), version, "amd64", "SYSEXT_VERSION=4798.0.0")
	older2 := host(t, older, "amd64-usr") // its own build: only the version differs
	if _, err := check(t, filepath.Join(older, "flatcar-docker.raw"), older2); !errors.Is(err, ErrSysext) || !strings.Contains(err.Error(), "VERSION_ID=4798.0.0, but the /usr is VERSION_ID=4799.0.0") {
		t.Fatalf("another version: %v", err)
	}
	renamed := filepath.Join(t.TempDir(), "docker.raw")
	os.WriteFile(renamed, testutil.Read(t, docker), 0o644)
	if _, err := check(t, renamed, h); !errors.Is(err, ErrSysext) || !strings.Contains(err.Error(), "extension-release.docker: systemd-sysext reads the extension-release file named after the image (it holds extension-release.flatcar-docker)") {
		t.Fatalf("renamed: %v", err)
	}
	if use, _ := dissect(t, renamed); use {
		t.Fatal("systemd-dissect takes the renamed image as an extension")
	}

	b := testutil.Read(t, docker)
	damage := func(what string, f func([]byte) []byte, want string) {
		t.Helper()
		c := f(bytes.Clone(b))
		_, err := Check(context.Background(), bytes.NewReader(c), int64(len(c)), "flatcar-docker", h)
		if !errors.Is(err, ErrSysext) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", what, err)
		}
	}
	const data = 2048 * 512
	damage("a data byte", func(c []byte) []byte { c[data+5000] ^= 1; return c }, "the stored hash tree is not the one of the data partition")
	damage("not a disk", func(c []byte) []byte { return c[data:] }, "not a disk image")
	sig := bytes.Index(b, []byte(`{"rootHash":"`))
	damage("root hash", func(c []byte) []byte { c[sig+14] ^= 1; return c }, "the verity signature is for root hash")
	damage("after the JSON", func(c []byte) []byte { c[bytes.IndexByte(c[sig:], 0)+sig+10] = 'x'; return c }, "data after its JSON's end")
	fp := bytes.Index(b, []byte(`"certificateFingerprint":"`)) + 26
	damage("fingerprint", func(c []byte) []byte { c[fp] ^= 1; return c }, "is not the fingerprint of the certificate that signed")
	s64 := bytes.Index(b, []byte(`"signature":"`)) + 13
	damage("signature", func(c []byte) []byte {
		end := bytes.IndexByte(c[s64:], '"') + s64
		c[end-10] = map[byte]byte{'A': 'B'}[c[end-10]] | 'A'
		return c
	}, "")
}

func FuzzCheck(f *testing.F) {
	f.Add(make([]byte, 4096))
	f.Fuzz(func(t *testing.T, b []byte) {
		h := &Host{ID: "flatcar", VersionID: version, Architecture: "x86-64"}
		Check(context.Background(), bytes.NewReader(b), int64(len(b)), "flatcar-docker", h)
	})
}

// BenchmarkCheck checks the sysexts of the release folder
// $AUGEN_BENCH_FOLDER (scripts/bench-folder.sh makes one of realistic
// size) against its /usr: the DDI checks' share of augen release DIR.
func BenchmarkCheck(b *testing.B) {
	dir := os.Getenv("AUGEN_BENCH_FOLDER")
	if dir == "" {
		b.Skip("AUGEN_BENCH_FOLDER is not set (scripts/bench-folder.sh)")
	}
	usr := testutil.Unbzip2(b, filepath.Join(dir, "flatcar_production_update.bin.bz2"))
	h, err := ReadHost(context.Background(), bytes.NewReader(usr), int64(len(usr)), "amd64-usr")
	if err != nil {
		b.Fatal(err)
	}
	raws, _ := filepath.Glob(filepath.Join(dir, "*.raw"))
	var size int64
	for _, p := range raws {
		st, _ := os.Stat(p)
		size += st.Size()
	}
	b.SetBytes(size)
	for b.Loop() {
		for _, p := range raws {
			f, err := os.Open(p)
			if err != nil {
				b.Fatal(err)
			}
			st, _ := f.Stat()
			if _, err := Check(context.Background(), f, st.Size(), strings.TrimSuffix(filepath.Base(p), ".raw"), h); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	}
}
