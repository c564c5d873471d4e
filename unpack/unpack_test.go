package unpack_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/unpack"
)

const imageDir = "../testdata/image/"

func want(t *testing.T, name string) string {
	b := testutil.Read(t, imageDir+name)
	return strings.Fields(string(b))[0]
}

// rawDisk is the decompressed test image.
func rawDisk(t *testing.T) []byte {
	return testutil.Unbzip2(t, imageDir+"flatcar_test_image.bin.bz2")
}

func bz(t *testing.T, b []byte) []byte {
	testutil.RequireTools(t, "bzip2")
	cmd := exec.Command("bzip2", "-9", "-c")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func run(t *testing.T, in []byte, opts unpack.Options) (*unpack.Result, []byte, error) {
	t.Helper()
	usr, err := os.Create(filepath.Join(t.TempDir(), "usr.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer usr.Close()
	if opts.USRSize == 0 {
		opts.USRSize = 4 << 20
	}
	opts.TempDir = t.TempDir()
	return unpack.Unpack(context.Background(), bytes.NewReader(in), usr, opts)
}

func TestUnpackTestImage(t *testing.T) {
	comp := testutil.Read(t, imageDir+"flatcar_test_image.bin.bz2")
	for _, tc := range []struct {
		name string
		in   []byte
		full bool
	}{
		{"bz2", comp, false},
		{"bz2 full check", comp, true},
		{"raw", rawDisk(t), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, kernel, err := run(t, tc.in, unpack.Options{FullCheck: tc.full})
			if err != nil {
				t.Fatal(err)
			}
			if res.USR.SHA256 != want(t, "usr.bin.sha256") || res.Kernel.SHA256 != want(t, "vmlinuz.sha256") {
				t.Fatalf("usr %s kernel %s", res.USR.SHA256, res.Kernel.SHA256)
			}
			if res.Verity.RootHash != want(t, "verity-root-hash") || res.Verity.Filesystem != "ext4" || res.Verity.DataSize != 3<<20 {
				t.Fatalf("verity %+v", res.Verity)
			}
			if len(kernel) != int(res.Kernel.Size) || res.Input.Size != int64(len(tc.in)) || res.Compressed != (tc.name != "raw") {
				t.Fatalf("result %+v", res)
			}
			if res.KernelFrom != "EFI-SYSTEM:flatcar/vmlinuz-a" || len(res.Partitions) != 6 {
				t.Fatalf("result %+v", res)
			}
		})
	}
}

// fixGPT recomputes the CRCs of the header at lba and its entries.
func fixGPT(disk []byte, lba int) {
	h := disk[lba*512:]
	entries := binary.LittleEndian.Uint64(h[72:])
	n, size := binary.LittleEndian.Uint32(h[80:]), binary.LittleEndian.Uint32(h[84:])
	e := disk[entries*512 : entries*512+uint64(n*size)]
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(e))
	binary.LittleEndian.PutUint32(h[16:], 0)
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
}

func TestUnpackErrors(t *testing.T) {
	comp := testutil.Read(t, imageDir+"flatcar_test_image.bin.bz2")
	disk := rawDisk(t)
	lastLBA := len(disk)/512 - 1

	renamed := bytes.Clone(disk)
	for _, at := range []int{2 * 512, (lastLBA - 32) * 512} { // primary and backup entries
		i := bytes.Index(renamed[at:], []byte("U\x00S\x00R\x00-\x00A\x00"))
		copy(renamed[at+i:], "U\x00S\x00R\x00-\x00X\x00")
	}
	fixGPT(renamed, 1)
	fixGPT(renamed, lastLBA)

	badPrimary := bytes.Clone(disk)
	badPrimary[512+60] ^= 1 // the disk GUID: the header CRC no longer matches
	badBoth := bytes.Clone(badPrimary)
	badBoth[lastLBA*512+20] ^= 1

	flipped := bytes.Clone(comp)
	flipped[len(flipped)/2] ^= 0x10

	kernelAltered := testutil.Read(t, "../testdata/vectors/vmlinuz-new") // no root hash at all
	realKernel := func() []byte {
		_, k, err := run(t, comp, unpack.Options{})
		if err != nil {
			t.Fatal(err)
		}
		k = bytes.Clone(k)
		k[64] ^= 1 // one hex digit of the root hash
		if k[64] < '0' || (k[64] > '9' && k[64] < 'a') || k[64] > 'f' {
			k[64] = '0'
		}
		return k
	}()

	for _, tc := range []struct {
		name string
		in   []byte
		opts unpack.Options
		want string
	}{
		{"truncated", comp[:len(comp)/2], unpack.Options{}, "truncated"},
		{"flipped bit", flipped, unpack.Options{FullCheck: true}, "bzip2: corrupt data: block"},
		{"bomb", bz(t, append(bytes.Clone(disk), make([]byte, 1<<20)...)), unpack.Options{FullCheck: true}, "past byte"},
		{"gpt both damaged", bz(t, badBoth), unpack.Options{}, "backup is damaged too"},
		{"no USR-A", bz(t, renamed), unpack.Options{}, "no partition labelled USR-A"},
		{"USR-A too small", comp, unpack.Options{USRSize: 8 << 20}, "smaller than the"},
		{"no kernel in FAT", comp, unpack.Options{KernelPath: "flatcar/vmlinuz-b"}, "file not found"},
		{"root hash altered", comp, unpack.Options{Kernel: realKernel}, "would not boot"},
		{"kernel without root hash", comp, unpack.Options{Kernel: kernelAltered}, "neither an x86 bzImage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, tc.in, tc.opts)
			if err == nil || !errors.Is(err, unpack.ErrImage) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}

	// A damaged primary table: the backup is used, with a warning.
	var warned []string
	res, _, err := run(t, bz(t, badPrimary), unpack.Options{Log: func(m string) { warned = append(warned, m) }})
	if err != nil || !res.BackupGPT || len(warned) != 1 || !strings.Contains(warned[0], "using the backup") {
		t.Fatalf("backup GPT: %v %+v %q", err, res, warned)
	}
	if res.USR.SHA256 != want(t, "usr.bin.sha256") {
		t.Fatal("backup GPT: wrong USR image")
	}
}

func TestImageSignature(t *testing.T) {
	img := imageDir + "flatcar_test_image.bin.bz2"
	who, err := unpack.VerifyImageSignature(img, img+".sig", imageDir+"TEST-ONLY-buildbot.asc")
	if err != nil || !strings.Contains(who, "TEST-ONLY buildbot") {
		t.Fatalf("%q %v", who, err)
	}
	for _, tc := range []struct{ sig, key, data, want string }{
		{img + ".sig", imageDir + "TEST-ONLY-other.asc", img, "not made by any key"},
		{imageDir + "other-key.sig", imageDir + "TEST-ONLY-buildbot.asc", img, "not made by any key"},
		{img + ".sig", imageDir + "TEST-ONLY-buildbot.asc", imageDir + "make-image.sh", "does not verify"},
		{img + ".sig", imageDir + "usr.bin.sha256", img, "not an OpenPGP public key"},
	} {
		_, err := unpack.VerifyImageSignature(tc.data, tc.sig, tc.key)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s/%s/%s: %v, want %q", tc.sig, tc.key, tc.data, err, tc.want)
		}
	}
}
