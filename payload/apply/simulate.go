package apply

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/augen-project/augen"
	"io"
	"os"

	"github.com/augen-project/augen/ctxio"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/tempfile"
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
	// Kernel is the old kernel; required when the kernel procedure has
	// old_info.
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
	if opi := m.GetOldPartitionInfo(); opi != nil {
		if src.Partition == "" {
			return nil, fmt.Errorf("%w: this is a delta payload: give the image it applies to (--old)", ErrNeedSource)
		}
		if err := fillFrom(ctx, part, src.Partition, opi, "old partition"); err != nil {
			return nil, err
		}
	}
	if err := part.Truncate(int64(max(npi.GetSize(), m.GetOldPartitionInfo().GetSize()))); err != nil {
		return nil, err
	}
	t := &Targets{Partition: part, Limit: npi.GetSize(), Procedures: map[payload.ProcedureType]Target{}, Counters: src.Counters}
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
			if p.GetType() != payload.ProcKernel || src.Kernel == "" {
				return nil, fmt.Errorf("%w: the %s procedure is a delta: give the old file it applies to (--old-kernel)", ErrNeedSource, p.GetType())
			}
			if err := fillFrom(ctx, f, src.Kernel, oi, "old kernel"); err != nil {
				return nil, err
			}
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

// fillFrom copies the first info.size bytes of path into f, checking them
// against info.hash as the client's VerifySource does.
func fillFrom(ctx context.Context, f *os.File, path string, info *payload.InstallInfo, what string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	h := sha256.New()
	n, err := ctxio.Copy(ctx, io.MultiWriter(f, h), io.LimitReader(in, int64(info.GetSize())))
	if err != nil {
		return err
	}
	if uint64(n) != info.GetSize() {
		return fmt.Errorf("%w: %s %s is %d bytes, the payload applies to %d", ErrMismatch, what, path, n, info.GetSize())
	}
	if sum := h.Sum(nil); !bytes.Equal(sum, info.GetHash()) {
		return fmt.Errorf("%w: %s %s has SHA-256 %x, the payload applies to %x", ErrMismatch, what, path, sum, info.GetHash())
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
