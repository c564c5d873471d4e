package gpt

import (
	"bytes"
	"errors"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

func disk(t testing.TB) []byte {
	return testutil.Unbzip2(t, testutil.Root()+"/image/flatcar_test_image.bin.bz2")
}

func TestFlatcarLayout(t *testing.T) {
	d := disk(t)
	tab, err := ParsePrimary(d[:PrimarySize])
	if err != nil {
		t.Fatal(err)
	}
	usr, err := tab.ByLabel("USR-A")
	if err != nil || usr.Type != TypeUSR || usr.GUID.String() != "7130C94A-213A-4E5A-8E26-6CCE9662F132" || usr.Size() != 6<<20 {
		t.Fatalf("USR-A %+v %v", usr, err)
	}
	if esp, _ := tab.ByLabel("EFI-SYSTEM"); esp.Type != TypeEFISystem || esp.Offset() != 1<<20 {
		t.Fatalf("ESP %+v", esp)
	}
	if tab.DiskGUID.String() != "00000000-0000-0000-0000-000000000001" {
		t.Fatalf("disk GUID %s", tab.DiskGUID)
	}
	// Every single-byte change of the header or entries is caught.
	for i := SectorSize; i < SectorSize+92; i++ {
		b := bytes.Clone(d[:PrimarySize])
		b[i] ^= 1
		if _, err := ParsePrimary(b); !errors.Is(err, ErrInvalid) {
			t.Fatalf("header byte %d changed: %v", i, err)
		}
	}
	for i := 2 * SectorSize; i < PrimarySize; i += 97 {
		b := bytes.Clone(d[:PrimarySize])
		b[i] ^= 1
		if _, err := ParsePrimary(b); !errors.Is(err, ErrInvalid) {
			t.Fatalf("entry byte %d changed: %v", i, err)
		}
	}
	// With random access, the backup stands in for a damaged primary.
	b := bytes.Clone(d)
	b[SectorSize+8] ^= 1
	var warned string
	tab, err = Read(bytes.NewReader(b), int64(len(b)), func(m string) { warned = m })
	if err != nil || !tab.Backup || warned == "" {
		t.Fatalf("backup: %v %v", err, warned)
	}
}

func TestGUID(t *testing.T) {
	g, err := ParseGUID("5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6")
	if err != nil || g.String() != "5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6" || g[0] != 0xF4 {
		t.Fatalf("%v %s", err, g)
	}
}

func FuzzParsePrimary(f *testing.F) {
	f.Add(disk(f)[:PrimarySize])
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := ParsePrimary(b)
		if err != nil {
			return
		}
		for _, p := range tab.Partitions {
			if p.FirstLBA > p.LastLBA {
				t.Fatal("accepted an inverted partition")
			}
		}
	})
}
