// Package verity checks the dm-verity metadata of a Flatcar USR image: the
// filesystem's size (from its own superblock) says where the hash area
// starts; the verity superblock there gives salt and block sizes; the root
// hash is computed from the data blocks and compared with the one the
// kernel carries (GRUB passes it as verity.usrhash=). A mismatch means the
// update would not boot.
package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
)

// ErrInvalid wraps every error about malformed or inconsistent metadata.
var ErrInvalid = errors.New("verity: invalid")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// FilesystemSize reads the size of the ext2/3/4 or btrfs filesystem at the
// start of r from its superblock.
func FilesystemSize(r io.ReaderAt) (int64, string, error) {
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, 1024); err == nil && binary.LittleEndian.Uint16(sb[56:]) == 0xEF53 {
		blocks := uint64(binary.LittleEndian.Uint32(sb[4:]))
		if binary.LittleEndian.Uint32(sb[0x60:])&0x80 != 0 { // INCOMPAT_64BIT
			blocks |= uint64(binary.LittleEndian.Uint32(sb[0x150:])) << 32
		}
		logBS := binary.LittleEndian.Uint32(sb[24:])
		if logBS > 6 {
			return 0, "", invalidf("ext superblock: block size 2^%d KiB", logBS)
		}
		return int64(blocks) << (10 + logBS), "ext4", nil
	}
	bt := make([]byte, 0x78)
	if _, err := r.ReadAt(bt, 0x10000); err == nil && string(bt[0x40:0x48]) == "_BHRfS_M" {
		return int64(binary.LittleEndian.Uint64(bt[0x70:])), "btrfs", nil
	}
	return 0, "", invalidf("no ext4 or btrfs superblock at the start of the USR image")
}

// Superblock is the dm-verity superblock veritysetup writes at the start
// of the hash area.
type Superblock struct {
	Version       uint32
	HashType      uint32
	UUID          [16]byte
	Algorithm     string
	DataBlockSize uint32
	HashBlockSize uint32
	DataBlocks    uint64
	Salt          []byte
}

// ParseSuperblock reads and checks a verity superblock.
func ParseSuperblock(b []byte) (*Superblock, error) {
	if len(b) < 512 || string(b[:8]) != "verity\x00\x00" {
		return nil, invalidf("no verity superblock (signature %q)", b[:min(8, len(b))])
	}
	sb := &Superblock{
		Version:       binary.LittleEndian.Uint32(b[8:]),
		HashType:      binary.LittleEndian.Uint32(b[12:]),
		Algorithm:     string(bytes.TrimRight(b[32:64], "\x00")),
		DataBlockSize: binary.LittleEndian.Uint32(b[64:]),
		HashBlockSize: binary.LittleEndian.Uint32(b[68:]),
		DataBlocks:    binary.LittleEndian.Uint64(b[72:]),
	}
	copy(sb.UUID[:], b[16:32])
	saltSize := binary.LittleEndian.Uint16(b[80:])
	if sb.Version != 1 || sb.HashType != 1 {
		return nil, invalidf("superblock version %d, hash type %d (want 1, 1)", sb.Version, sb.HashType)
	}
	if sb.Algorithm != "sha256" {
		return nil, invalidf("hash algorithm %q (Flatcar uses sha256)", sb.Algorithm)
	}
	if sb.DataBlockSize != 4096 || sb.HashBlockSize != 4096 {
		return nil, invalidf("block sizes %d/%d (Flatcar uses 4096/4096)", sb.DataBlockSize, sb.HashBlockSize)
	}
	if saltSize > 256 {
		return nil, invalidf("salt of %d bytes", saltSize)
	}
	sb.Salt = bytes.Clone(b[88 : 88+int(saltSize)])
	return sb, nil
}

// RootHash computes the root hash of the first DataBlocks blocks of r as
// dm-verity format 1 does: every block hashed with the salt first, digests
// packed into hash blocks (zero-padded), level by level, until one block
// remains, whose salted hash is the root.
func RootHash(r io.ReaderAt, sb *Superblock) ([]byte, error) {
	root, _, err := Tree(r, sb)
	return root, err
}

// Tree computes the root hash and the hash tree of the first DataBlocks
// blocks of r. tree is the hash area as veritysetup lays it out after its
// superblock block: the level nearest the root first, the data blocks'
// digests last, each level in whole hash blocks.
func Tree(r io.ReaderAt, sb *Superblock) (root, tree []byte, err error) {
	if sb.DataBlocks == 0 {
		return nil, nil, invalidf("the superblock covers no data blocks")
	}
	hs := int(sb.HashBlockSize)
	per := hs / sha256.Size
	hash := func(block []byte) []byte {
		h := sha256.New()
		h.Write(sb.Salt)
		h.Write(block)
		return h.Sum(nil)
	}
	// Level 0: the data read once, 1 MiB at a time, by one reader per core
	// (SHA-256 of the data is most of the work), each digest put in place.
	level, err := levelZero(r, sb)
	if err != nil {
		return nil, nil, err
	}
	var levels [][]byte
	for {
		// Pack this level's digests into zero-padded hash blocks.
		nBlocks := (len(level)/sha256.Size + per - 1) / per
		packed := make([]byte, nBlocks*hs)
		for i := 0; i < len(level)/sha256.Size; i++ {
			copy(packed[(i/per)*hs+(i%per)*sha256.Size:], level[i*sha256.Size:(i+1)*sha256.Size])
		}
		levels = append(levels, packed)
		if nBlocks == 1 {
			for i := len(levels) - 1; i >= 0; i-- {
				tree = append(tree, levels[i]...)
			}
			return hash(packed), tree, nil
		}
		level = make([]byte, 0, nBlocks*sha256.Size)
		for i := 0; i < nBlocks; i++ {
			level = append(level, hash(packed[i*hs:(i+1)*hs])...)
		}
	}
}

// levelZero hashes the first DataBlocks blocks of r, salt first, on
// every core: r must allow concurrent ReadAt (a file, a section of one).
func levelZero(r io.ReaderAt, sb *Superblock) ([]byte, error) {
	const chunk = 256 // blocks a read
	bs := uint64(sb.DataBlockSize)
	if sb.DataBlocks > (1<<62)/sha256.Size {
		return nil, invalidf("%d data blocks", sb.DataBlocks)
	}
	level := make([]byte, sb.DataBlocks*sha256.Size)
	chunks := (sb.DataBlocks + chunk - 1) / chunk
	// Free space is zeros, and every zero block has the same hash: it is
	// computed once, and a block is compared with zeros (far cheaper
	// than hashing it) before it is hashed.
	zero := make([]byte, bs)
	zh := sha256.New()
	zh.Write(sb.Salt)
	zh.Write(zero)
	zeroHash := zh.Sum(nil)
	var next atomic.Uint64
	workers := int(min(uint64(runtime.GOMAXPROCS(0)), chunks))
	errs := make(chan error, workers)
	for range workers {
		go func() {
			buf := make([]byte, chunk*bs)
			h := sha256.New()
			for {
				c := next.Add(1) - 1
				if c >= chunks {
					errs <- nil
					return
				}
				first := c * chunk
				n := min(chunk, sb.DataBlocks-first)
				if _, err := r.ReadAt(buf[:n*bs], int64(first*bs)); err != nil {
					next.Store(chunks) // the others stop at their next chunk
					errs <- invalidf("reading data block %d: %v", first, err)
					return
				}
				for i := range n {
					blk := buf[i*bs : (i+1)*bs]
					if bytes.Equal(blk, zero) {
						copy(level[(first+i)*sha256.Size:], zeroHash)
						continue
					}
					h.Reset()
					h.Write(sb.Salt)
					h.Write(blk)
					// Sum appends into level's own room: in place.
					h.Sum(level[(first+i)*sha256.Size : (first+i)*sha256.Size])
				}
			}
		}()
	}
	var err error
	for range workers {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	return level, err
}

// KernelRootHash returns the 32-byte root hash Flatcar's build writes into
// the kernel image as 64 hex characters: at byte 64 of an x86 bzImage, at
// byte 512 of an arm64 Image.
func KernelRootHash(kernel []byte) ([]byte, string, error) {
	off, arch := -1, ""
	switch {
	case len(kernel) > 0x206 && string(kernel[0x202:0x206]) == "HdrS":
		off, arch = 64, "amd64"
	case len(kernel) > 60 && string(kernel[56:60]) == "ARM\x64":
		off, arch = 512, "arm64"
	default:
		return nil, "", invalidf("the kernel is neither an x86 bzImage nor an arm64 Image")
	}
	if len(kernel) < off+64 {
		return nil, arch, invalidf("the kernel is too short to carry a root hash")
	}
	h, err := hex.DecodeString(string(kernel[off : off+64]))
	if err != nil {
		return nil, arch, invalidf("no verity root hash at byte %d of the %s kernel (%q…)", off, arch, kernel[off:off+16])
	}
	return h, arch, nil
}

// Result is what Check found.
type Result struct {
	Filesystem     string `json:"filesystem"`
	DataSize       int64  `json:"data_size"`
	HashOffset     int64  `json:"hash_offset"`
	Salt           string `json:"salt"`
	RootHash       string `json:"root_hash"`
	KernelRootHash string `json:"kernel_root_hash"`
	KernelArch     string `json:"kernel_arch"`
}

// Check computes the root hash of the USR image and compares it with the
// kernel's.
func Check(usr io.ReaderAt, usrSize int64, kernel []byte) (*Result, error) {
	fsSize, fsType, err := FilesystemSize(usr)
	if err != nil {
		return nil, err
	}
	if fsSize%4096 != 0 || fsSize+4096 > usrSize {
		return nil, invalidf("the %s filesystem is %d bytes: no room for a hash area in the %d-byte image", fsType, fsSize, usrSize)
	}
	sbBytes := make([]byte, 512)
	if _, err := usr.ReadAt(sbBytes, fsSize); err != nil {
		return nil, invalidf("reading the verity superblock at byte %d: %v", fsSize, err)
	}
	sb, err := ParseSuperblock(sbBytes)
	if err != nil {
		return nil, fmt.Errorf("%w (at byte %d, right after the %s filesystem)", err, fsSize, fsType)
	}
	if int64(sb.DataBlocks)*int64(sb.DataBlockSize) != fsSize {
		return nil, invalidf("the verity superblock covers %d blocks, the filesystem is %d bytes", sb.DataBlocks, fsSize)
	}
	root, err := RootHash(usr, sb)
	if err != nil {
		return nil, err
	}
	kroot, arch, err := KernelRootHash(kernel)
	if err != nil {
		return nil, err
	}
	res := &Result{Filesystem: fsType, DataSize: fsSize, HashOffset: fsSize, Salt: hex.EncodeToString(sb.Salt),
		RootHash: hex.EncodeToString(root), KernelRootHash: hex.EncodeToString(kroot), KernelArch: arch}
	if !bytes.Equal(root, kroot) {
		return res, invalidf("the USR image's verity root hash is %s, but the kernel expects %s: this update would not boot", res.RootHash, res.KernelRootHash)
	}
	return res, nil
}
