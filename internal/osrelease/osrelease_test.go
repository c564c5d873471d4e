package osrelease

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

func TestField(t *testing.T) {
	b := []byte("NAME=\"Flatcar Container Linux by Kinvolk\"\nID=flatcar\n VERSION = x\nVERSION='4459.2.1'\nBUILD_ID=\"2026-11-01-0000\"\n")
	for k, want := range map[string]string{"NAME": "Flatcar Container Linux by Kinvolk", "ID": "flatcar", "VERSION": "4459.2.1", "BUILD_ID": "2026-11-01-0000", "MISSING": ""} {
		if got := Field(b, k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
}

func image(t *testing.T, files map[string]string, mkfs func(src, img string) *exec.Cmd, tool string) *os.File {
	t.Helper()
	testutil.RequireTools(t, tool)
	src := t.TempDir()
	for p, c := range files {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(src, p), []byte(c), 0o644)
	}
	img := filepath.Join(t.TempDir(), "usr.img")
	os.WriteFile(img, nil, 0o644)
	os.Truncate(img, 64<<20)
	if out, err := mkfs(src, img).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestVersion(t *testing.T) {
	ext4 := func(src, img string) *exec.Cmd {
		return exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-d", src, img)
	}
	btrfs := func(src, img string) *exec.Cmd {
		return exec.Command("mkfs.btrfs", "-q", "-f", "--mixed", "--rootdir", src, img)
	}
	for _, fs := range []struct {
		name, tool string
		mkfs       func(src, img string) *exec.Cmd
	}{{"ext4", "mke2fs", ext4}, {"btrfs", "mkfs.btrfs", btrfs}} {
		t.Run(fs.name, func(t *testing.T) {
			f := image(t, map[string]string{"lib/os-release": "ID=flatcar\nVERSION=4459.2.1\n"}, fs.mkfs, fs.tool)
			st, _ := f.Stat()
			if v, from, err := Version(context.Background(), f, st.Size()); err != nil || v != "4459.2.1" || from != "/usr/lib/os-release" {
				t.Fatalf("%q %q %v", v, from, err)
			}
			if err := Check(context.Background(), f, st.Size(), "4459.2.1"); err != nil {
				t.Fatal(err)
			}
			if err := Check(context.Background(), f, st.Size(), "4459.2.2"); !errors.Is(err, ErrMismatch) {
				t.Fatalf("other version: %v", err)
			}
			g := image(t, map[string]string{"share/flatcar/release": "FLATCAR_RELEASE_VERSION=3510.2.0\n", "lib/os-release": "ID=flatcar\n"}, fs.mkfs, fs.tool)
			st, _ = g.Stat()
			if v, from, err := Version(context.Background(), g, st.Size()); err != nil || v != "3510.2.0" || from != "/usr/share/flatcar/release" {
				t.Fatalf("fallback: %q %q %v", v, from, err)
			}
			h := image(t, map[string]string{"share/os-release": "VERSION=1\n"}, fs.mkfs, fs.tool)
			st, _ = h.Stat()
			if _, _, err := Version(context.Background(), h, st.Size()); !errors.Is(err, ErrNoVersion) {
				t.Fatalf("no version: %v", err)
			}
		})
	}
	if _, _, err := Version(context.Background(), bytes.NewReader(make([]byte, 1<<20)), 1<<20); !errors.Is(err, ErrNoFilesystem) {
		t.Fatalf("zeros: %v", err)
	}
}
