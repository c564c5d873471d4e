package unpack

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A DIGESTS file as Flatcar's CI writes it: every SHA-512 and SHA-1 line
// for the image must match; none at all is an error too.
func TestCheckDigests(t *testing.T) {
	d := Digest{SHA512: strings.Repeat("ab", 64), SHA1: strings.Repeat("cd", 20)}
	write := func(s string) string {
		p := filepath.Join(t.TempDir(), "DIGESTS")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "# SHA1 HASH\n" + d.SHA1 + "  img.bin.bz2\n# SHA512 HASH\n" + strings.ToUpper(d.SHA512) + "  img.bin.bz2\n" + strings.Repeat("0", 40) + "  other.bin\n"
	if err := CheckDigests(write(good), "img.bin.bz2", d); err != nil {
		t.Fatalf("matching DIGESTS: %v", err)
	}
	bad := "# SHA512 HASH\n" + strings.Repeat("ef", 64) + "  img.bin.bz2\n"
	if err := CheckDigests(write(bad), "img.bin.bz2", d); !errors.Is(err, ErrImage) || !strings.Contains(err.Error(), "the DIGESTS file says") {
		t.Fatalf("wrong SHA-512: %v", err)
	}
	if err := CheckDigests(write(good), "missing.bin.bz2", d); !errors.Is(err, ErrImage) || !strings.Contains(err.Error(), "no SHA-1 or SHA-512 line") {
		t.Fatalf("no line for the image: %v", err)
	}
}

func TestFileSignatureNeedsKey(t *testing.T) {
	if _, _, err := File(t.Context(), "x", nil, Options{}, Checks{Signature: "x.sig"}); err == nil {
		t.Fatal("a signature without its key is accepted")
	}
}
