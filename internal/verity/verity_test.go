package verity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

// usrOf cuts the USR image (first 4 MiB of USR-A, at 10 MiB) out of the
// test disk, whose verity tree veritysetup made.
func usrOf(t *testing.T) []byte {
	d := testutil.Unbzip2(t, testutil.Root()+"/image/flatcar_test_image.bin.bz2")
	return d[10<<20 : 14<<20]
}

func TestRootHashMatchesVeritysetup(t *testing.T) {
	usr := usrOf(t)
	size, fs, err := FilesystemSize(bytes.NewReader(usr))
	if err != nil || size != 3<<20 || fs != "ext4" {
		t.Fatalf("%d %s %v", size, fs, err)
	}
	sb, err := ParseSuperblock(usr[size:])
	if err != nil {
		t.Fatal(err)
	}
	root, err := RootHash(bytes.NewReader(usr), sb)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(testutil.Read(t, testutil.Root()+"/image/verity-root-hash")))
	if hex.EncodeToString(root) != want {
		t.Fatalf("root %x, veritysetup said %s", root, want)
	}
	// One changed data byte changes the root.
	usr2 := bytes.Clone(usr)
	usr2[5000] ^= 1
	if r2, _ := RootHash(bytes.NewReader(usr2), sb); bytes.Equal(r2, root) {
		t.Fatal("root hash ignores the data")
	}
}

func TestKernelRootHash(t *testing.T) {
	root := strings.Repeat("ab", 32)
	x86 := make([]byte, 4096)
	copy(x86[0x202:], "HdrS")
	copy(x86[64:], root)
	arm := make([]byte, 4096)
	copy(arm[56:], "ARM\x64")
	copy(arm[512:], root)
	for _, k := range [][]byte{x86, arm} {
		h, _, err := KernelRootHash(k)
		if err != nil || hex.EncodeToString(h) != root {
			t.Fatalf("%x %v", h, err)
		}
	}
	x86[70] = 'z'
	if _, _, err := KernelRootHash(x86); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad hex accepted: %v", err)
	}
	if _, _, err := KernelRootHash(make([]byte, 4096)); !errors.Is(err, ErrInvalid) {
		t.Fatal("unknown kernel format accepted")
	}
}

func TestSuperblockRules(t *testing.T) {
	usr := usrOf(t)
	good := usr[3<<20 : 3<<20+512]
	for _, tc := range []struct {
		at   int
		val  byte
		want string
	}{{0, 'x', "no verity superblock"}, {8, 2, "version"}, {32, 'm', "algorithm"}, {65, 0x20, "block sizes"}} {
		b := bytes.Clone(good)
		b[tc.at] = tc.val
		if _, err := ParseSuperblock(b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("byte %d: %v, want %q", tc.at, err, tc.want)
		}
	}
}
