package filekind

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

func TestDetect(t *testing.T) {
	ext := make([]byte, 2048)
	binary.LittleEndian.PutUint16(ext[1080:], 0xEF53)
	gpt := make([]byte, 1024)
	copy(gpt[512:], "EFI PART")
	tar := make([]byte, 1024)
	copy(tar[257:], "ustar\x0000")
	btrfs := make([]byte, 0x10040+8)
	copy(btrfs[0x10040:], "_BHRfS_M")
	for _, c := range []struct {
		head []byte
		want Kind
	}{
		{[]byte("CrAU\x00\x00\x00\x00\x00\x00\x00\x01"), Payload},
		{tar, Tar},
		{[]byte("BZh91AY&SY"), Bzip2},
		{[]byte("BZh0"), Unknown},
		{gpt, DiskImage},
		{ext, Ext},
		{btrfs, Btrfs},
		{[]byte("-----BEGIN PUBLIC KEY-----\n"), PEM},
		{[]byte("  {\"channels\": {}}"), JSON},
		{nil, Unknown},
		{[]byte("hello"), Unknown},
	} {
		if got := Detect(c.head); got != c.want {
			t.Errorf("%q…: %v, want %v", c.head[:min(len(c.head), 8)], got, c.want)
		}
	}
}

func TestDetectFile(t *testing.T) {
	for name, want := range map[string]Kind{
		"../../testdata/vectors/full-signed.bin":     Payload,
		"../../testdata/vectors/usr-new.bin.bz2":     Bzip2,
		"../../testdata/vectors/TEST-ONLY-key-a.pem": PEM,
	} {
		got, err := DetectFile(name)
		if err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", name, got, err, want)
		}
	}
	if _, err := DetectFile(filepath.Join(t.TempDir(), "missing")); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}
