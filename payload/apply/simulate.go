package apply

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/internal/ctxio"
	"github.com/augen-project/augen/internal/tempfile"
	"github.com/augen-project/augen/payload"
)

// ErrMismatch means the payload applied but did not rebuild what its
// manifest promises (or what the caller expected), or the old image given
// is not the one a delta applies to.
var ErrMismatch = augen.Rejection("apply: mismatch")

// ErrNeedSource means a delta was given without the image it applies to.
var ErrNeedSource = errors.New("apply: missing source")

// Sources are the running system a delta applies to.
type Sources struct {
	// Partition is the old USR image; required when the payload has
	// old_partition_info (a delta).
	Partition string
	// PartitionSize is the size of the machine's USR partition that holds
	// Partition, followed by zeros: what a machine's partition holds past
	// the image (the install image leaves it zero, and every update copies
	// the running partition whole into the other one). The client reads and
	// hashes that whole device (FilesystemCopierAction), so a delta applies
	// on partitions of one size only. 0 means the larger of Partition's
	// size and the payload's old_partition_info.size: the partition the
	// delta says it was made for.
	PartitionSize uint64
	// PartitionName and KernelName, if set, name Partition and Kernel in
	// errors (the user's file, when Partition was unpacked from it).
	PartitionName, KernelName string
	// Kernel is the old kernel; required when the kernel procedure has
	// old_info. The client hashes and copies the whole file
	// (KernelCopierAction).
	Kernel string
	// TempDir holds the simulated targets ("" means os.TempDir()).
	TempDir string
	// InspectPartition, if set, is shown the rebuilt partition once its
	// SHA-256 matched new_partition_info (verification reads the release
	// version inside it).
	InspectPartition func(r io.ReaderAt, size int64)
	// InspectKernel, if set, is shown the rebuilt kernel once its SHA-256
	// matched its new_info (after InspectPartition; the partition's reader
	// is still valid then, so the two can be checked against each other).
	InspectKernel func(r io.ReaderAt, size int64)
	// Counters, if set, counts the work done (see Targets.Counters).
	Counters *Counters
	// Progress, if set, is told how far the apply is: stage "applying"
	// (payload data applied of all of it), then "hashing" (bytes of the
	// rebuilt targets hashed), each followed by " "+Name when Name is set.
	Progress augen.Progress
	Name     string
}

// stage names a progress stage for src.
func (src Sources) stage(s string) string {
	if src.Name != "" {
		return s + " " + src.Name
	}
	return s
}

// Rebuilt is what one target holds after the simulated update.
type Rebuilt struct {
	Name   string // "partition", "KERNEL", "PCR_POLICY"; "image" for an extra
	Size   uint64
	SHA256 [sha256.Size]byte
}

// MarshalJSON is the one shape every command prints a rebuilt target in:
// {"target", "size", "sha256" (hex)}.
func (r Rebuilt) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Target string `json:"target"`
		Size   uint64 `json:"size"`
		SHA256 string `json:"sha256"`
	}{r.Name, r.Size, hex.EncodeToString(r.SHA256[:])})
}

// Simulate applies a payload the way the client does (target filled with a
// copy of the running partition, operations in place, kernel written to a
// file and truncated to its size) on temporary files, and checks that the
// partition and every typed procedure rebuild to their new_info. It reads pr
// to the end, so the payload's signatures are available afterwards.
//
// Sizes are checked against MaxPartitionSize and MaxFileSize before any
// file is created; ctx is checked before every operation and every MiB
// copied or hashed, and the temporary files are gone when it returns.
func Simulate(ctx context.Context, pr *payload.Reader, src Sources) ([]Rebuilt, error) {
	m := pr.Manifest()
	npi := m.GetNewPartitionInfo()
	if npi.GetSize() == 0 {
		// The client hashes 0 bytes of the partition, and the machine
		// then boots whatever the other partition held.
		return nil, fmt.Errorf("%w: new_partition_info.size is 0: the payload installs no /usr: %w", ErrApply, augen.Stricter("no-partition"))
	}
	if npi.GetSize()%payload.BlockSize != 0 {
		return nil, fmt.Errorf("%w: new_partition_info.size %d is not a multiple of %d (the client hashes that prefix; augen requires whole blocks): %w",
			ErrApply, npi.GetSize(), payload.BlockSize, augen.Stricter("partition-size"))
	}
	if n := max(npi.GetSize(), m.GetOldPartitionInfo().GetSize()); n > MaxPartitionSize {
		return nil, fmt.Errorf("%w: the payload describes a partition of %d bytes, over augen's limit of %d", ErrApply, n, uint64(MaxPartitionSize))
	}
	for _, p := range m.Procedures {
		if n := max(p.GetNewInfo().GetSize(), p.GetOldInfo().GetSize()); p.Type != nil && n > MaxFileSize {
			return nil, fmt.Errorf("%w: the payload describes a %s of %d bytes, over augen's limit of %d", ErrApply, p.GetType(), n, uint64(MaxFileSize))
		}
	}
	part, err := tempfile.Create(src.TempDir, "augen-partition-*")
	if err != nil {
		return nil, err
	}
	defer tempfile.Remove(part)
	t := &Targets{Partition: part, Limit: npi.GetSize(), Procedures: map[payload.ProcedureType]Target{}, Counters: src.Counters, TempDir: src.TempDir}
	if opi := m.GetOldPartitionInfo(); opi != nil {
		if src.Partition == "" {
			return nil, fmt.Errorf("%w: this is a delta payload: give the image it applies to (--old)", ErrNeedSource)
		}
		device, err := fillPartition(ctx, part, src.Partition, cmp.Or(src.PartitionName, src.Partition), src.PartitionSize, opi)
		if err != nil {
			return nil, err
		}
		if npi.GetSize() > device {
			// The client's target is the other USR partition, as large as
			// this one: it cannot hold more (debug-apply's file grows).
			return nil, fmt.Errorf("%w: the payload installs a partition of %d bytes, larger than the %d-byte partition it applies on: %w",
				ErrApply, npi.GetSize(), device, augen.Stricter("partition-grows"))
		}
		t.PartitionSize = device
	} else if err := part.Truncate(int64(npi.GetSize())); err != nil {
		return nil, err
	}
	if src.Progress != nil {
		stage, total, meta := src.stage("applying"), int64(pr.DataSize()), pr.MetadataSize()
		t.Progress = func(off int64) { src.Progress(stage, max(off-meta, 0), total) }
	}
	procFiles := map[payload.ProcedureType]*os.File{}
	for _, p := range m.Procedures {
		if p.Type == nil {
			continue
		}
		if _, dup := procFiles[p.GetType()]; dup {
			return nil, fmt.Errorf("%w: two %s procedures: %w", ErrApply, p.GetType(), augen.Stricter("duplicate-procedure"))
		}
		f, err := tempfile.Create(src.TempDir, "augen-"+p.GetType().String()+"-*")
		if err != nil {
			return nil, err
		}
		defer tempfile.Remove(f)
		if oi := p.GetOldInfo(); oi != nil {
			if p.GetType() != payload.ProcKernel {
				// The client only ever hashes and copies an old kernel
				// (KernelCopierAction); augen has no running PCR policy
				// to start from.
				return nil, fmt.Errorf("%w: the %s procedure is a delta (it has old_info); augen verifies delta procedures for the kernel only, so it cannot check what this one installs: %w",
					ErrApply, p.GetType(), augen.Stricter("delta-procedure"))
			}
			if src.Kernel == "" {
				return nil, fmt.Errorf("%w: the KERNEL procedure is a delta: the old kernel it applies to is needed (payload verify and apply: --old-kernel; verify and push: --old VERSION=USR.bin,VMLINUZ; or a production image as the old image)", ErrNeedSource)
			}
			n, err := fillKernel(ctx, f, src.Kernel, cmp.Or(src.KernelName, src.Kernel), oi)
			if err != nil {
				return nil, err
			}
			if t.FileSizes == nil {
				t.FileSizes = map[payload.ProcedureType]uint64{}
			}
			t.FileSizes[p.GetType()] = n
		}
		procFiles[p.GetType()] = f
		t.Procedures[p.GetType()] = f
	}
	if err := Apply(ctx, pr, t); err != nil {
		return nil, err
	}
	out := []Rebuilt{}
	hashed, toHash := int64(0), int64(npi.GetSize())
	for _, p := range m.Procedures {
		if p.Type != nil {
			toHash += int64(p.GetNewInfo().GetSize())
		}
	}
	hashFile := func(ctx context.Context, f *os.File, size uint64, name string) (Rebuilt, error) {
		var w io.Writer = io.Discard
		if src.Progress != nil {
			stage := src.stage("hashing")
			w = progressWriter(func(n int) { hashed += int64(n); src.Progress(stage, hashed, toHash) })
		}
		return hashFileTo(ctx, f, size, name, w)
	}
	r, err := hashFile(ctx, part, npi.GetSize(), "partition")
	if err != nil {
		return nil, err
	}
	out = append(out, r)
	if !bytes.Equal(r.SHA256[:], npi.GetHash()) {
		return out, fmt.Errorf("%w: the rebuilt partition's SHA-256 is %x, new_partition_info says %x", ErrMismatch, r.SHA256, npi.GetHash())
	}
	if src.InspectPartition != nil {
		src.InspectPartition(io.NewSectionReader(part, 0, int64(npi.GetSize())), int64(npi.GetSize()))
	}
	for _, p := range m.Procedures {
		f := procFiles[p.GetType()]
		if p.Type == nil || f == nil {
			continue
		}
		ni := p.GetNewInfo()
		// The client truncates file targets to new_info.size on close.
		if err := f.Truncate(int64(ni.GetSize())); err != nil {
			return nil, err
		}
		r, err := hashFile(ctx, f, ni.GetSize(), p.GetType().String())
		if err != nil {
			return nil, err
		}
		out = append(out, r)
		if !bytes.Equal(r.SHA256[:], ni.GetHash()) {
			return out, fmt.Errorf("%w: the rebuilt %s's SHA-256 is %x, its new_info says %x", ErrMismatch, p.GetType(), r.SHA256, ni.GetHash())
		}
		if p.GetType() == payload.ProcKernel && src.InspectKernel != nil {
			src.InspectKernel(io.NewSectionReader(f, 0, int64(ni.GetSize())), int64(ni.GetSize()))
		}
	}
	return out, nil
}

// fillPartition copies the old image at path into f and extends it with
// zeros to size bytes (0: the larger of the image's size and info.size),
// and checks the whole of it against info.hash as the client's
// VerifySource does: FilesystemCopierAction hashes the running partition
// device to its end, whatever info.size says (payload_processor.cc
// compares hashes only). It returns the partition's size.
func fillPartition(ctx context.Context, f *os.File, path, name string, size uint64, info *payload.InstallInfo) (uint64, error) {
	n, h, err := copyHashed(ctx, f, path, name, "old image", MaxPartitionSize)
	if err != nil {
		return 0, err
	}
	image := n
	if size == 0 {
		size = max(image, info.GetSize())
	}
	if size < image {
		return 0, fmt.Errorf("%w: the old image %s (%d bytes) does not fit a partition of %d bytes", ErrMismatch, name, image, size)
	}
	if size > MaxPartitionSize {
		return 0, fmt.Errorf("%w: a partition of %d bytes is over augen's limit of %d", ErrApply, size, uint64(MaxPartitionSize))
	}
	if err := hashZeros(ctx, h, size-image); err != nil {
		return 0, err
	}
	if err := f.Truncate(int64(size)); err != nil {
		return 0, err
	}
	if err := verifySource(h.Sum(nil), info, "old partition", name, image, size); err != nil {
		return 0, err
	}
	return size, nil
}

// fillKernel copies the whole old kernel file at path into f and checks
// its hash against info.hash, as KernelCopierAction and VerifySource do
// (the file's whole length; info.size is not read). It returns the size.
func fillKernel(ctx context.Context, f *os.File, path, name string, info *payload.InstallInfo) (uint64, error) {
	n, h, err := copyHashed(ctx, f, path, name, "old kernel", MaxFileSize)
	if err != nil {
		return 0, err
	}
	if err := verifySource(h.Sum(nil), info, "old kernel", name, n, n); err != nil {
		return 0, err
	}
	return n, nil
}

// copyHashed copies the file at path (named name in errors) into f,
// hashing it, and refuses one over limit bytes after reading at most one
// byte past it.
func copyHashed(ctx context.Context, f *os.File, path, name, what string, limit int64) (uint64, hash.Hash, error) {
	in, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer in.Close()
	h := sha256.New()
	n, err := ctxio.Copy(ctx, io.MultiWriter(f, h), io.LimitReader(in, limit+1))
	if err != nil {
		return 0, nil, err
	}
	if n > limit {
		return 0, nil, fmt.Errorf("%w: the %s %s is over augen's limit of %d bytes", ErrApply, what, name, limit)
	}
	return uint64(n), h, nil
}

// verifySource is payload_processor.cc VerifyHash: the hash of the whole
// running partition or kernel must be the old info's (an empty one fails
// the client's CHECK).
func verifySource(sum []byte, info *payload.InstallInfo, what, path string, image, size uint64) error {
	if len(info.GetHash()) == 0 {
		return fmt.Errorf("%w: the payload's %s info has no hash (the client aborts)", ErrApply, what)
	}
	if bytes.Equal(sum, info.GetHash()) {
		return nil
	}
	on := fmt.Sprintf("%s %s (%d bytes)", what, path, image)
	if size != image {
		on = fmt.Sprintf("%s %s (%d bytes) in a partition of %d bytes, the rest zeros", what, path, image, size)
	}
	hint := ""
	if info.GetSize() != size && info.GetSize() != 0 {
		hint = fmt.Sprintf("; its %s info says %d bytes", what, info.GetSize())
		if what == "old partition" {
			hint = fmt.Sprintf("; it was made for a partition of %d bytes (--partition-size)", info.GetSize())
		}
	}
	return fmt.Errorf("%w: the delta does not apply to the %s: SHA-256 %x, the delta applies to %x%s",
		ErrMismatch, on, sum, info.GetHash(), hint)
}

// hashZeros feeds n zero bytes to h.
func hashZeros(ctx context.Context, h io.Writer, n uint64) error {
	var buf [1 << 16]byte
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(n, uint64(len(buf)))
		h.Write(buf[:k])
		n -= k
	}
	return nil
}

// progressWriter counts what is written through it.
type progressWriter func(n int)

func (p progressWriter) Write(b []byte) (int, error) { p(len(b)); return len(b), nil }

// hashFileTo hashes the first size bytes of f, writing them to also too.
func hashFileTo(ctx context.Context, f *os.File, size uint64, name string, also io.Writer) (Rebuilt, error) {
	h := sha256.New()
	n, err := ctxio.Copy(ctx, io.MultiWriter(h, also), io.NewSectionReader(f, 0, int64(size)))
	if err != nil {
		return Rebuilt{}, err
	}
	if uint64(n) != size {
		return Rebuilt{}, fmt.Errorf("%w: the rebuilt %s is %d bytes, want %d", ErrMismatch, name, n, size)
	}
	r := Rebuilt{Name: name, Size: size}
	h.Sum(r.SHA256[:0])
	return r, nil
}
