package apply_test

import (
	"compress/bzip2"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/apply"
)

const vectors = "../../testdata/vectors/"

// unbz writes the decompressed test vector name (.bz2) to a temp dir.
func unbz(t *testing.T, name string) string {
	t.Helper()
	in, err := os.Open(vectors + name + ".bz2")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	p := filepath.Join(t.TempDir(), name)
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, bzip2.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	out.Close()
	return p
}

func sha(t *testing.T, path string) [32]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestRebuildsVectors applies every payload made by the real generator and
// checks it rebuilds exactly usr-new.bin and vmlinuz-new.
func TestRebuildsVectors(t *testing.T) {
	oldUSR := unbz(t, "usr-old.bin")
	newUSR := unbz(t, "usr-new.bin")
	for _, tc := range []struct {
		name   string
		kernel bool
	}{
		{"full-signed.bin", true},
		{"full-nokernel-signed.bin", false},
		{"full-2sig-signed.bin", true},
		{"full-unsigned.bin", true},
		{"delta-signed.bin", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(vectors + tc.name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			pr, err := payload.NewReader(f, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := apply.Simulate(pr, apply.Sources{Partition: oldUSR, Kernel: vectors + "vmlinuz-old", TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			want := []apply.Rebuilt{{Name: "partition", SHA256: sha(t, newUSR)}}
			if tc.kernel {
				want = append(want, apply.Rebuilt{Name: "KERNEL", SHA256: sha(t, vectors+"vmlinuz-new")})
			}
			if len(got) != len(want) {
				t.Fatalf("rebuilt %d targets, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].Name != want[i].Name || got[i].SHA256 != want[i].SHA256 {
					t.Errorf("target %d: got %s %x, want %s %x", i, got[i].Name, got[i].SHA256, want[i].Name, want[i].SHA256)
				}
			}
		})
	}
}
