package unpack_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/augen-project/augen/internal/testutil"

	"github.com/augen-project/augen/unpack"
)

// Finding 6: the ESP was spooled to disk at whatever size the GPT gave
// (a 2.2 KB .bz2 wrote 2 GB), and a damaged primary table spooled up to
// 64 GiB. An ESP over MaxESPSize is refused before anything is written;
// the disk spooled for the backup table stops at the size the protective
// MBR declares.
func TestHostileImages(t *testing.T) {
	disk := rawDisk(t)

	bigESP := bytes.Clone(disk)
	i := bytes.Index(bigESP[2*512:], []byte("E\x00F\x00I\x00-\x00S\x00")) + 2*512 - 56
	// Moved past the other partitions, and 2 GiB long.
	first := uint64(len(disk) / 512)
	binary.LittleEndian.PutUint64(bigESP[i+32:], first)
	last := first + (2<<30)/512 - 1
	binary.LittleEndian.PutUint64(bigESP[i+40:], last)
	// The header declares a disk large enough to hold it.
	binary.LittleEndian.PutUint64(bigESP[512+32:], last+34) // backup header
	binary.LittleEndian.PutUint64(bigESP[512+48:], last+1)  // last usable
	fixGPT(bigESP, 1)
	bigESPbz := bz(t, bigESP)
	testutil.SaveCrafted(t, "6-esp-2gib.bin.bz2", bigESPbz)
	_, _, err := run(t, bigESPbz, unpack.Options{})
	if !errors.Is(err, unpack.ErrImage) || !strings.Contains(err.Error(), "over augen's limit") {
		t.Fatalf("2 GiB ESP: %v", err)
	}

	small := bytes.Clone(disk)
	small[512+60] ^= 1 // damage the primary header
	for e := 446; e < 510; e += 16 {
		if small[e+4] == 0xEE {
			binary.LittleEndian.PutUint32(small[e+12:], 2047) // a 1 MiB disk
		}
	}
	smallbz := bz(t, small)
	testutil.SaveCrafted(t, "6-damaged-gpt-small-mbr.bin.bz2", smallbz)
	_, _, err = run(t, smallbz, unpack.Options{})
	if !errors.Is(err, unpack.ErrImage) || !strings.Contains(err.Error(), "protective MBR") {
		t.Fatalf("damaged GPT, 1 MiB MBR: %v", err)
	}
}
