package fat

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// fat12 builds a FAT12 filesystem of 512-byte sectors and one-sector
// clusters: clusters data clusters, a FAT of fatSectors, a root directory
// of 16 entries whose first entry is file "A" starting at cluster first.
func fat12(clusters, fatSectors int, first uint16) []byte {
	total := 1 + fatSectors + 1 + clusters
	img := make([]byte, total*512)
	bs := img[:512]
	binary.LittleEndian.PutUint16(bs[11:], 512)
	bs[13] = 1
	binary.LittleEndian.PutUint16(bs[14:], 1) // reserved
	bs[16] = 1                                // FATs
	binary.LittleEndian.PutUint16(bs[17:], 16)
	binary.LittleEndian.PutUint16(bs[19:], uint16(total))
	binary.LittleEndian.PutUint16(bs[22:], uint16(fatSectors))
	bs[510], bs[511] = 0x55, 0xAA
	root := img[(1+fatSectors)*512:]
	copy(root, "A          ")
	root[11] = 0x20
	binary.LittleEndian.PutUint16(root[26:], first)
	binary.LittleEndian.PutUint32(root[28:], 100)
	return img
}

// Finding 5: 681 clusters need 1024.5 bytes of FAT12; a 1024-byte table
// was accepted (the size was rounded down) and reading the entry of the
// last cluster, 682, ran off its end (panic in unpack).
func TestFAT12TableRoundedUp(t *testing.T) {
	img := fat12(681, 2, 682)
	_, err := Open(bytes.NewReader(img), int64(len(img)))
	if err == nil || !strings.Contains(err.Error(), "too small for 681 clusters") {
		t.Fatalf("Open = %v", err)
	}
	// With a table of the right size, the last cluster reads normally.
	img = fat12(681, 3, 682)
	fs, err := Open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	fs.fat[682+682/2], fs.fat[682+682/2+1] = 0xFF, 0x0F // end of chain
	if _, err := fs.ReadFile("A", 1<<20); err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	// An entry past the table reads as a value no chain follows.
	if v := fs.next(1 << 20); fs.valid(v) {
		t.Fatalf("next past the table = %d", v)
	}
}
