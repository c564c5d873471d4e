package fat

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

// mkfs makes a FAT filesystem with mkfs.vfat and puts flatcar/vmlinuz-a
// (a long name) and a short-named file in it.
func mkfs(t *testing.T, bits string, size int64, kernel []byte) []byte {
	t.Helper()
	testutil.RequireTools(t, "mkfs.vfat", "mmd", "mcopy")
	dir := t.TempDir()
	img, k := filepath.Join(dir, "esp.img"), filepath.Join(dir, "vmlinuz-a")
	os.WriteFile(k, kernel, 0o644)
	os.WriteFile(img, nil, 0o644)
	os.Truncate(img, size)
	for _, c := range [][]string{
		{"mkfs.vfat", "-F", bits, "-n", "EFI-SYSTEM", img},
		{"mmd", "-i", img, "::/flatcar"},
		{"mcopy", "-i", img, k, "::/flatcar/vmlinuz-a"},
		{"mcopy", "-i", img, k, "::/SHORT.TXT"},
	} {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	return testutil.Read(t, img)
}

func TestReadFile(t *testing.T) {
	kernel := make([]byte, 300_001)
	rand.NewChaCha8([32]byte{3}).Read(kernel)
	for _, tc := range []struct {
		bits string
		size int64
	}{{"12", 4 << 20}, {"16", 32 << 20}, {"32", 64 << 20}} {
		t.Run("FAT"+tc.bits, func(t *testing.T) {
			img := mkfs(t, tc.bits, tc.size, kernel)
			fs, err := Open(bytes.NewReader(img), int64(len(img)))
			if err != nil {
				t.Fatal(err)
			}
			if got := fs.bits; tc.bits != "12" && got != map[string]int{"16": 16, "32": 32}[tc.bits] {
				t.Fatalf("detected FAT%d", got)
			}
			for _, p := range []string{"flatcar/vmlinuz-a", "/FLATCAR/VMLINUZ-A", "short.txt"} {
				got, err := fs.ReadFile(p, 1<<20)
				if err != nil || !bytes.Equal(got, kernel) {
					t.Fatalf("%s: %v", p, err)
				}
			}
			for _, p := range []string{"flatcar/vmlinuz-b", "nope/vmlinuz-a", "short.txt/x"} {
				if _, err := fs.ReadFile(p, 1<<20); !errors.Is(err, ErrNotFound) {
					t.Fatalf("%s: %v", p, err)
				}
			}
			if _, err := fs.ReadFile("flatcar/vmlinuz-a", 1000); err == nil || !strings.Contains(err.Error(), "more than") {
				t.Fatalf("size limit: %v", err)
			}
		})
	}
}

func TestCorrupt(t *testing.T) {
	img := mkfs(t, "16", 32<<20, []byte("kernel"))
	for _, tc := range []struct {
		name string
		edit func(b []byte)
	}{
		{"signature", func(b []byte) { b[510] = 0 }},
		{"sector size", func(b []byte) { b[11], b[12] = 0x00, 0x03 }},
		{"cluster size", func(b []byte) { b[13] = 3 }},
		{"huge FAT", func(b []byte) { b[22], b[23] = 0xff, 0xff }},
	} {
		b := bytes.Clone(img)
		tc.edit(b)
		if _, err := Open(bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func FuzzFAT(f *testing.F) {
	f.Add(make([]byte, 4096))
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		fs.ReadFile("flatcar/vmlinuz-a", 1<<20)
	})
}
