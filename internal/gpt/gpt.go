// Package gpt reads GUID partition tables of 512-byte-sector disk images
// strictly: header and entry CRC32s are checked, sizes are bounded before
// anything is allocated, and partitions must lie in the usable area without
// overlapping. The backup table (at the end of the disk) stands in for a
// damaged primary.
package gpt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// SectorSize is the only sector size Flatcar images use.
const SectorSize = 512

// Limits checked before allocating.
const (
	MaxEntries    = 1024
	MaxEntrySize  = 4096
	MaxEntryBytes = 1 << 20
)

// ErrInvalid wraps every error about a malformed table.
var ErrInvalid = errors.New("gpt: invalid partition table")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// GUID is a GPT GUID in its on-disk (mixed-endian) byte order.
type GUID [16]byte

// ParseGUID parses the canonical text form.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 {
		return g, fmt.Errorf("gpt: bad GUID %q", s)
	}
	var raw [16]byte
	for i := range raw {
		if _, err := fmt.Sscanf(h[2*i:2*i+2], "%02x", &raw[i]); err != nil {
			return g, fmt.Errorf("gpt: bad GUID %q", s)
		}
	}
	// The first three fields are little-endian on disk.
	g[0], g[1], g[2], g[3] = raw[3], raw[2], raw[1], raw[0]
	g[4], g[5] = raw[5], raw[4]
	g[6], g[7] = raw[7], raw[6]
	copy(g[8:], raw[8:])
	return g, nil
}

func mustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

func (g GUID) String() string {
	return fmt.Sprintf("%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X",
		g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15])
}

// Partition type GUIDs of Flatcar's disk layout.
var (
	TypeUSR       = mustGUID("5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6")
	TypeEFISystem = mustGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
)

// Partition is one used entry.
type Partition struct {
	Index    int // 1-based, as partition numbers go
	Type     GUID
	GUID     GUID
	FirstLBA uint64
	LastLBA  uint64
	Attrs    uint64
	Label    string
}

// Offset is the partition's first byte in the disk image.
func (p Partition) Offset() int64 { return int64(p.FirstLBA) * SectorSize }

// Size is the partition's length in bytes.
func (p Partition) Size() int64 { return int64(p.LastLBA-p.FirstLBA+1) * SectorSize }

// Table is a checked partition table.
type Table struct {
	DiskGUID   GUID
	Partitions []Partition
	// Backup is true when the table came from the backup header.
	Backup bool
	// LastLBA is the disk's last sector according to the header.
	LastLBA uint64
}

type header struct {
	current, backup, firstUsable, lastUsable uint64
	disk                                     GUID
	entriesLBA                               uint64
	numEntries, entrySize, entriesCRC        uint32
}

func parseHeader(b []byte, wantLBA uint64) (*header, error) {
	if len(b) < SectorSize {
		return nil, invalidf("header sector truncated")
	}
	if string(b[:8]) != "EFI PART" {
		return nil, invalidf("no GPT signature at LBA %d", wantLBA)
	}
	if rev := binary.LittleEndian.Uint32(b[8:]); rev != 0x00010000 {
		return nil, invalidf("unsupported revision 0x%08x at LBA %d", rev, wantLBA)
	}
	size := binary.LittleEndian.Uint32(b[12:])
	if size < 92 || size > SectorSize {
		return nil, invalidf("header size %d at LBA %d", size, wantLBA)
	}
	hdr := make([]byte, size)
	copy(hdr, b[:size])
	want := binary.LittleEndian.Uint32(hdr[16:])
	binary.LittleEndian.PutUint32(hdr[16:], 0)
	if got := crc32.ChecksumIEEE(hdr); got != want {
		return nil, invalidf("header CRC32 at LBA %d is %08x, computed %08x", wantLBA, want, got)
	}
	h := &header{
		current:     binary.LittleEndian.Uint64(b[24:]),
		backup:      binary.LittleEndian.Uint64(b[32:]),
		firstUsable: binary.LittleEndian.Uint64(b[40:]),
		lastUsable:  binary.LittleEndian.Uint64(b[48:]),
		entriesLBA:  binary.LittleEndian.Uint64(b[72:]),
		numEntries:  binary.LittleEndian.Uint32(b[80:]),
		entrySize:   binary.LittleEndian.Uint32(b[84:]),
		entriesCRC:  binary.LittleEndian.Uint32(b[88:]),
	}
	copy(h.disk[:], b[56:72])
	if h.current != wantLBA {
		return nil, invalidf("header at LBA %d says it is at LBA %d", wantLBA, h.current)
	}
	if h.numEntries > MaxEntries || h.entrySize < 128 || h.entrySize > MaxEntrySize || h.entrySize%8 != 0 ||
		uint64(h.numEntries)*uint64(h.entrySize) > MaxEntryBytes {
		return nil, invalidf("%d entries of %d bytes is outside the limits", h.numEntries, h.entrySize)
	}
	if h.firstUsable > h.lastUsable {
		return nil, invalidf("usable area %d..%d is empty", h.firstUsable, h.lastUsable)
	}
	return h, nil
}

// entriesBytes is how many bytes the header's entry array takes.
func (h *header) entriesBytes() int { return int(h.numEntries) * int(h.entrySize) }

func (h *header) parseEntries(b []byte, backup bool) (*Table, error) {
	if len(b) < h.entriesBytes() {
		return nil, invalidf("partition entries truncated")
	}
	b = b[:h.entriesBytes()]
	if got := crc32.ChecksumIEEE(b); got != h.entriesCRC {
		return nil, invalidf("partition entries CRC32 is %08x, computed %08x", h.entriesCRC, got)
	}
	t := &Table{DiskGUID: h.disk, Backup: backup, LastLBA: max(h.current, h.backup)}
	for i := 0; i < int(h.numEntries); i++ {
		e := b[i*int(h.entrySize):]
		var p Partition
		copy(p.Type[:], e[0:16])
		if p.Type == (GUID{}) {
			continue
		}
		copy(p.GUID[:], e[16:32])
		p.Index = i + 1
		p.FirstLBA = binary.LittleEndian.Uint64(e[32:])
		p.LastLBA = binary.LittleEndian.Uint64(e[40:])
		p.Attrs = binary.LittleEndian.Uint64(e[48:])
		u := make([]uint16, 36)
		for j := range u {
			u[j] = binary.LittleEndian.Uint16(e[56+2*j:])
		}
		n := 0
		for n < len(u) && u[n] != 0 {
			n++
		}
		p.Label = string(utf16.Decode(u[:n]))
		if p.FirstLBA > p.LastLBA || p.FirstLBA < h.firstUsable || p.LastLBA > h.lastUsable {
			return nil, invalidf("partition %d (%s) spans LBA %d..%d, outside the usable area %d..%d",
				p.Index, p.Label, p.FirstLBA, p.LastLBA, h.firstUsable, h.lastUsable)
		}
		for _, q := range t.Partitions {
			if p.FirstLBA <= q.LastLBA && q.FirstLBA <= p.LastLBA {
				return nil, invalidf("partitions %d and %d overlap", q.Index, p.Index)
			}
		}
		t.Partitions = append(t.Partitions, p)
	}
	return t, nil
}

// PrimarySize is how many bytes from the start of a disk ParsePrimary
// needs: the protective MBR, the header and a standard 128×128-byte array.
const PrimarySize = 34 * SectorSize

// ParsePrimary reads the primary table from the first bytes of a disk
// (at least PrimarySize of them, or as many as the header asks for).
func ParsePrimary(first []byte) (*Table, error) {
	if len(first) < 2*SectorSize {
		return nil, invalidf("disk shorter than two sectors")
	}
	h, err := parseHeader(first[SectorSize:], 1)
	if err != nil {
		return nil, err
	}
	start := h.entriesLBA * SectorSize
	if h.entriesLBA < 2 || start+uint64(h.entriesBytes()) > uint64(len(first)) {
		return nil, invalidf("partition entries at LBA %d lie beyond the %d bytes read", h.entriesLBA, len(first))
	}
	return h.parseEntries(first[start:], false)
}

// Read reads the table of a disk image with random access: the primary,
// or, when it is damaged, the backup at the disk's last sector (reported
// through warn).
func Read(r io.ReaderAt, diskSize int64, warn func(string)) (*Table, error) {
	first := make([]byte, PrimarySize)
	n, err := r.ReadAt(first, 0)
	if err != nil && err != io.EOF {
		return nil, err
	}
	t, perr := ParsePrimary(first[:n])
	if perr == nil {
		return t, nil
	}
	if diskSize < 3*SectorSize {
		return nil, perr
	}
	last := uint64(diskSize/SectorSize - 1)
	sec := make([]byte, SectorSize)
	if _, err := r.ReadAt(sec, int64(last)*SectorSize); err != nil {
		return nil, fmt.Errorf("%v; reading the backup: %w", perr, err)
	}
	h, err := parseHeader(sec, last)
	if err != nil {
		return nil, fmt.Errorf("%v; the backup is damaged too: %v", perr, err)
	}
	entries := make([]byte, h.entriesBytes())
	if _, err := r.ReadAt(entries, int64(h.entriesLBA)*SectorSize); err != nil {
		return nil, fmt.Errorf("%v; reading the backup entries: %w", perr, err)
	}
	t, err = h.parseEntries(entries, true)
	if err != nil {
		return nil, fmt.Errorf("%v; the backup is damaged too: %v", perr, err)
	}
	if warn != nil {
		warn(fmt.Sprintf("the primary partition table is damaged (%v); using the backup at LBA %d", perr, last))
	}
	return t, nil
}

// ByLabel returns the one partition with this label.
func (t *Table) ByLabel(label string) (Partition, error) {
	var found []Partition
	for _, p := range t.Partitions {
		if p.Label == label {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		var labels []string
		for _, p := range t.Partitions {
			labels = append(labels, p.Label)
		}
		return Partition{}, fmt.Errorf("gpt: no partition labelled %s (labels: %s)", label, strings.Join(labels, ", "))
	case 1:
		return found[0], nil
	}
	return Partition{}, fmt.Errorf("gpt: %d partitions labelled %s", len(found), label)
}
