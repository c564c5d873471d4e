// Package unpack extracts what a payload needs from a Flatcar production
// disk image (flatcar_production_image.bin, usually bzip2-compressed) in one
// streaming pass, decoding bzip2 on all cores: the first GiB of USR-A and
// the kernel from the EFI system partition. It checks what nobody checked before: the partition table's
// CRCs, and that the USR image's dm-verity root hash is the one the kernel
// will ask for at boot. Decoding stops once USR-A has been read, unless a
// full check of the whole stream is asked for.
package unpack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/internal/budget"
	"github.com/augen-project/augen/internal/fat"
	"github.com/augen-project/augen/internal/gpt"
	"github.com/augen-project/augen/internal/pbzip2"
	"github.com/augen-project/augen/internal/tempfile"
	"github.com/augen-project/augen/internal/verity"
)

// Defaults of Flatcar's layout.
const (
	DefaultUSRSize    = 1 << 30 // extract_blocks 2097152 × 512
	DefaultKernelPath = "flatcar/vmlinuz-a"
	USRLabel          = "USR-A"
	ESPLabel          = "EFI-SYSTEM"
	MaxKernelSize     = 256 << 20
	// MaxESPSize bounds the EFI system partition, which is spooled to
	// disk before its FAT is read: Flatcar's is 1 GiB since 2025-09
	// (128 MiB before). A larger one is refused before anything is
	// written.
	MaxESPSize = 1 << 30
	// MaxDiskSize bounds the disk spooled to read the backup partition
	// table when the primary one is damaged: Flatcar's production disk
	// is about 8 GiB. The protective MBR's size bounds it further.
	MaxDiskSize = 16 << 30
	// maxFATRead bounds what reading the kernel from the ESP may read:
	// the FAT, the directories on the way and the kernel itself.
	maxFATRead = 3 * MaxKernelSize
)

// ErrImage wraps every error about an image that is not what it claims.
var ErrImage = augen.Rejection("unpack: bad image")

func badf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrImage, fmt.Sprintf(format, args...))
}

// Options tune Unpack.
type Options struct {
	// USRSize is how much of USR-A is the USR image (default 1 GiB).
	USRSize int64
	// KernelPath is the kernel's path in the EFI system partition.
	KernelPath string
	// Kernel, when set, is used instead of the one in the image (CI's
	// separate flatcar_production_image.vmlinuz).
	Kernel []byte
	// FullCheck decodes the whole stream (every block CRC and the stream
	// CRC) instead of stopping after USR-A.
	FullCheck bool
	// TempDir holds the spooled EFI system partition ("" = os.TempDir()).
	TempDir string
	// Progress is called with the stage "unpacking", the input bytes read
	// and InputSize.
	Progress augen.Progress
	// InputSize is the input's size, for Progress (0 if not known).
	InputSize int64
	// Log receives warnings (a damaged primary partition table).
	Log augen.Log
	// Digests also computes the input's SHA-512 and SHA-1 (for CI's
	// DIGESTS file); SHA-256 is always computed.
	Digests bool
	// UnsafeSkipVerity skips the dm-verity check. Only for measuring
	// unpacking on images built without verity (the benchmark corpus); the
	// CLI never sets it.
	UnsafeSkipVerity bool
}

// Digest is a file's size and hashes.
type Digest struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	SHA512 string `json:"sha512,omitempty"`
	SHA1   string `json:"sha1,omitempty"`
}

// PartitionInfo describes one partition of the image.
type PartitionInfo struct {
	Number int    `json:"number"`
	Label  string `json:"label"`
	Type   string `json:"type"`
	GUID   string `json:"guid"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
}

// Result is what Unpack found; it is image.json.
type Result struct {
	Input Digest `json:"input"`
	// SignedBy names the OpenPGP key whose signature of the input was
	// verified ("" when none was checked).
	SignedBy string `json:"signed_by,omitempty"`
	// Digests is the DIGESTS file the input matched (nil: none given).
	Digests    *DigestsCheck   `json:"digests,omitempty"`
	Compressed bool            `json:"compressed"`
	FullCheck  bool            `json:"full_check"`
	DiskSize   int64           `json:"disk_size"`
	BackupGPT  bool            `json:"backup_gpt_used"`
	Partitions []PartitionInfo `json:"partitions"`
	USR        Digest          `json:"usr"`
	Kernel     Digest          `json:"kernel"`
	KernelFrom string          `json:"kernel_from"`
	Verity     *verity.Result  `json:"verity"`
}

// hashingReader hashes and counts everything read through it.
type hashingReader struct {
	r                io.Reader
	n                int64
	s256, s512, sha1 hash.Hash
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.n += int64(n)
	h.s256.Write(p[:n])
	if h.s512 != nil {
		h.s512.Write(p[:n])
		h.sha1.Write(p[:n])
	}
	return n, err
}

func (h *hashingReader) digest() Digest {
	d := Digest{Size: h.n, SHA256: hex.EncodeToString(h.s256.Sum(nil))}
	if h.s512 != nil {
		d.SHA512, d.SHA1 = hex.EncodeToString(h.s512.Sum(nil)), hex.EncodeToString(h.sha1.Sum(nil))
	}
	return d
}

// Unpack reads the disk image from in (bzip2-compressed or raw), writes
// the USR image to usr and returns the kernel. usr is read back for the
// verity check.
func Unpack(ctx context.Context, in io.Reader, usr *os.File, opts Options) (*Result, []byte, error) {
	if opts.USRSize == 0 {
		opts.USRSize = DefaultUSRSize
	}
	if opts.USRSize < 0 || opts.USRSize%4096 != 0 {
		return nil, nil, fmt.Errorf("unpack: USR size %d is not a positive multiple of 4096", opts.USRSize)
	}
	if opts.KernelPath == "" {
		opts.KernelPath = DefaultKernelPath
	}
	raw := &hashingReader{r: in, s256: sha256.New()}
	if opts.Digests {
		raw.s512, raw.sha1 = sha512.New(), sha1.New()
	}
	br := bufio.NewReaderSize(raw, 1<<20)
	res := &Result{FullCheck: opts.FullCheck}
	var disk io.Reader = br
	if magic, _ := br.Peek(3); string(magic) == "BZh" {
		res.Compressed = true
		z := pbzip2.NewReader(br, 0)
		defer z.Close()
		disk = z
	}
	s := &stream{r: disk, ctx: ctx, progress: func(out int64) {
		if opts.Progress != nil {
			opts.Progress("unpacking", raw.n, opts.InputSize)
		}
	}}

	first := make([]byte, gpt.PrimarySize)
	if err := s.read(first); err != nil {
		return nil, nil, s.wrap(err, "the partition table")
	}
	table, err := gpt.ParsePrimary(first)
	var random *os.File // the whole disk, when the primary table is damaged
	if err != nil {
		// The backup table is at the end of the disk: keep the whole disk
		// (zeros sparse) so that it can be read.
		random, err = s.spoolAll(first, opts.TempDir, err)
		if err != nil {
			return nil, nil, err
		}
		defer tempfile.Remove(random)
		st, _ := random.Stat()
		table, err = gpt.Read(random, st.Size(), opts.Log.Warn)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrImage, err)
		}
	}
	res.BackupGPT = table.Backup
	res.DiskSize = int64(table.LastLBA+1) * gpt.SectorSize
	for _, p := range table.Partitions {
		res.Partitions = append(res.Partitions, PartitionInfo{Number: p.Index, Label: p.Label, Type: p.Type.String(), GUID: p.GUID.String(), Offset: p.Offset(), Size: p.Size()})
	}
	usrPart, err := table.ByLabel(USRLabel)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrImage, err)
	}
	if usrPart.Type != gpt.TypeUSR {
		return nil, nil, badf("partition %d (USR-A) has type %s, not Flatcar's USR type %s", usrPart.Index, usrPart.Type, gpt.TypeUSR)
	}
	if usrPart.Size() < opts.USRSize {
		return nil, nil, badf("USR-A is %d bytes (%s), smaller than the %d-byte (%s) USR image asked for (--usr-size): give --usr-size %s or less",
			usrPart.Size(), mib(usrPart.Size()), opts.USRSize, mib(opts.USRSize), mib(usrPart.Size()))
	}
	type region struct {
		off, size int64
		dst       io.WriterAt
		h         hash.Hash
	}
	usrHash := sha256.New()
	regions := []region{{off: usrPart.Offset(), size: opts.USRSize, dst: usr, h: usrHash}}
	var esp *os.File
	var espPart gpt.Partition
	if opts.Kernel == nil {
		if espPart, err = table.ByLabel(ESPLabel); err != nil {
			return nil, nil, fmt.Errorf("%w: %w (or give the kernel with --kernel)", ErrImage, err)
		}
		if espPart.Size() > MaxESPSize {
			return nil, nil, badf("EFI-SYSTEM is %d bytes, over augen's limit of %d (Flatcar's is 1 GiB); give the kernel with --kernel", espPart.Size(), int64(MaxESPSize))
		}
		if random == nil {
			if esp, err = tempfile.Create(opts.TempDir, "augen-esp-*"); err != nil {
				return nil, nil, err
			}
			defer tempfile.Remove(esp)
			regions = append(regions, region{off: espPart.Offset(), size: espPart.Size(), dst: esp})
		}
	}
	if random != nil {
		// Everything is on disk already: copy the USR image out of it.
		if err := copyRange(usr, usrHash, random, usrPart.Offset(), opts.USRSize); err != nil {
			return nil, nil, err
		}
	} else {
		if regions[len(regions)-1].off < regions[0].off {
			regions[0], regions[len(regions)-1] = regions[len(regions)-1], regions[0]
		}
		for _, r := range regions {
			if err := s.skipTo(r.off); err != nil {
				return nil, nil, s.wrap(err, fmt.Sprintf("the bytes before offset %d", r.off))
			}
			if err := s.copySparse(r.dst, r.h, r.size); err != nil {
				return nil, nil, s.wrap(err, fmt.Sprintf("the partition at offset %d", r.off))
			}
		}
		if opts.FullCheck {
			if err := s.drain(res.DiskSize); err != nil {
				return nil, nil, err
			}
		}
	}
	// The compressed input is hashed whole even when decoding stopped early.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, nil, err
	}
	res.Input = raw.digest()
	res.USR = Digest{Size: opts.USRSize, SHA256: hex.EncodeToString(usrHash.Sum(nil))}

	kernel := opts.Kernel
	res.KernelFrom = "file"
	if kernel == nil {
		src := io.ReaderAt(esp)
		base := int64(0)
		if random != nil {
			src, base = random, espPart.Offset()
		}
		fs, err := fat.Open(budget.NewReaderAt(ctx, io.NewSectionReader(src, base, espPart.Size()), maxFATRead), espPart.Size())
		if err != nil {
			return nil, nil, fmt.Errorf("%w: EFI-SYSTEM: %v", ErrImage, err)
		}
		if kernel, err = fs.ReadFile(opts.KernelPath, MaxKernelSize); err != nil {
			return nil, nil, fmt.Errorf("%w: EFI-SYSTEM: %v", ErrImage, err)
		}
		if len(kernel) == 0 {
			return nil, nil, badf("EFI-SYSTEM: %s is empty", opts.KernelPath)
		}
		res.KernelFrom = ESPLabel + ":" + opts.KernelPath
	}
	ks := sha256.Sum256(kernel)
	res.Kernel = Digest{Size: int64(len(kernel)), SHA256: hex.EncodeToString(ks[:])}
	if opts.UnsafeSkipVerity {
		return res, kernel, nil
	}
	vr, err := verity.Check(usr, opts.USRSize, kernel)
	res.Verity = vr
	if err != nil {
		return res, nil, fmt.Errorf("%w: %w", ErrImage, err)
	}
	return res, kernel, nil
}

func copyRange(dst io.Writer, h hash.Hash, src io.ReaderAt, off, n int64) error {
	_, err := io.Copy(io.MultiWriter(dst, h), io.NewSectionReader(src, off, n))
	return err
}

// stream tracks the position in the decoded disk.
type stream struct {
	r        io.Reader
	pos      int64
	ctx      context.Context
	buf      []byte
	progress func(out int64)
}

func (s *stream) read(p []byte) error {
	n, err := io.ReadFull(s.r, p)
	s.pos += int64(n)
	return err
}

// wrap explains a decoding error: where in the disk it happened.
func (s *stream) wrap(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return badf("the image ends at disk byte %d, while reading %s (truncated download?)", s.pos, what)
	}
	if errors.Is(err, pbzip2.ErrCorrupt) {
		return badf("%v (disk byte %d, while reading %s)", err, s.pos, what)
	}
	return err
}

func (s *stream) chunk() []byte {
	if s.buf == nil {
		s.buf = make([]byte, 1<<20)
	}
	return s.buf
}

// skipTo decodes and discards up to disk offset off.
func (s *stream) skipTo(off int64) error {
	if off < s.pos {
		return badf("partitions overlap the partition table")
	}
	for s.pos < off {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		b := s.chunk()
		n := min(int64(len(b)), off-s.pos)
		if err := s.read(b[:n]); err != nil {
			return err
		}
		s.progress(s.pos)
	}
	return nil
}

// copySparse copies n bytes to dst at offsets 0..n, skipping all-zero
// 4 KiB blocks (dst is a fresh file: they read back as zeros).
func (s *stream) copySparse(dst io.WriterAt, h hash.Hash, n int64) error {
	var zero [4096]byte
	for done := int64(0); done < n; {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		b := s.chunk()[:min(int64(len(s.chunk())), n-done)]
		if err := s.read(b); err != nil {
			return err
		}
		if h != nil {
			h.Write(b)
		}
		// Each stretch of non-zero blocks is one write, not one a block.
		from := -1 // start of the pending stretch
		for off := 0; from >= 0 || off < len(b); off += 4096 {
			end := min(off+4096, len(b))
			if off < len(b) && !bytes.Equal(b[off:end], zero[:end-off]) {
				if from < 0 {
					from = off
				}
				continue
			}
			if from >= 0 { // a zero block or the end: write the stretch
				if _, err := dst.WriteAt(b[from:min(off, len(b))], done+int64(from)); err != nil {
					return err
				}
				from = -1
			}
		}
		// Make sure the file has its full length even if it ends in zeros.
		if f, ok := dst.(*os.File); ok && done+int64(len(b)) == n {
			if err := f.Truncate(n); err != nil {
				return err
			}
		}
		done += int64(len(b))
		s.progress(s.pos)
	}
	return nil
}

// drain decodes the rest of the stream (checking every CRC), refusing
// output past the disk size the partition table declares: a bzip2 bomb
// stops there, not when the disk is full.
func (s *stream) drain(diskSize int64) error {
	for {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		b := s.chunk()
		n, err := s.r.Read(b)
		s.pos += int64(n)
		if s.pos > diskSize {
			return badf("the image decodes past byte %d, the disk size its partition table declares", diskSize)
		}
		s.progress(s.pos)
		if err == io.EOF {
			if s.pos < diskSize {
				return badf("the image ends at byte %d, before the disk's end at %d (truncated?)", s.pos, diskSize)
			}
			return nil
		}
		if err != nil {
			return s.wrap(err, "the rest of the image")
		}
	}
}

// diskLimit is how far spoolAll may decode: the disk size the protective
// MBR declares (its 0xEE partition covers LBA 1 to the end), within
// MaxDiskSize. The MBR is not trusted for anything else.
func diskLimit(first []byte) (int64, string) {
	if len(first) >= 512 && first[510] == 0x55 && first[511] == 0xAA {
		for i := 0; i < 4; i++ {
			e := first[446+16*i:]
			if e[4] != 0xEE {
				continue
			}
			sectors := int64(binary.LittleEndian.Uint32(e[12:]))
			if sectors != 0xFFFFFFFF && (sectors+1)*gpt.SectorSize <= MaxDiskSize {
				return (sectors + 1) * gpt.SectorSize, "the size its protective MBR declares"
			}
		}
	}
	return MaxDiskSize, "augen's limit for a disk image"
}

// spoolAll writes the whole disk (first, then the rest of the stream) to
// a sparse temporary file.
func (s *stream) spoolAll(first []byte, dir string, cause error) (*os.File, error) {
	f, err := tempfile.Create(dir, "augen-disk-*")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		tempfile.Remove(f)
		return nil, err
	}
	if _, err := f.WriteAt(first, 0); err != nil {
		return fail(err)
	}
	_ = cause // the caller reports it if the backup is damaged too
	limit, why := diskLimit(first)
	var zero [4096]byte
	for {
		b := s.chunk()
		start := s.pos
		n, err := s.r.Read(b)
		s.pos += int64(n)
		for off := 0; off < n; off += 4096 {
			blk := b[off:min(off+4096, n)]
			if !bytes.Equal(blk, zero[:len(blk)]) {
				if _, werr := f.WriteAt(blk, start+int64(off)); werr != nil {
					return fail(werr)
				}
			}
		}
		if s.pos > limit {
			return fail(badf("the primary partition table is damaged and the image decodes past %d bytes (%s) before its end, where the backup table would be", limit, why))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(s.wrap(err, "the image (to find the backup partition table)"))
		}
	}
	if err := f.Truncate(s.pos); err != nil {
		return fail(err)
	}
	return f, nil
}

// mib writes a size in the unit --usr-size takes: GiB or MiB when whole,
// else bytes.
func mib(n int64) string {
	switch {
	case n > 0 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%d", n)
}
