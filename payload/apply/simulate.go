package apply

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/augen-project/augen/payload"
)

// ErrMismatch means the payload applied but did not rebuild what its
// manifest promises (or what the caller expected), or the old image given
// is not the one a delta applies to.
var ErrMismatch = errors.New("apply: mismatch")

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
}

// Rebuilt is what one target holds after the simulated update.
type Rebuilt struct {
	Name   string // "partition", "KERNEL", "PCR_POLICY"
	Size   uint64
	SHA256 [sha256.Size]byte
}

// Simulate applies a payload the way the client does (target filled with a
// copy of the running partition, operations in place, kernel written to a
// file and truncated to its size) on temporary files, and checks that the
// partition and every typed procedure rebuild to their new_info. It reads pr
// to the end, so the payload's signatures are available afterwards.
func Simulate(pr *payload.Reader, src Sources) ([]Rebuilt, error) {
	m := pr.Manifest()
	npi := m.GetNewPartitionInfo()
	part, err := os.CreateTemp(src.TempDir, "augen-partition-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(part.Name())
	defer part.Close()
	if opi := m.GetOldPartitionInfo(); opi != nil {
		if src.Partition == "" {
			return nil, fmt.Errorf("%w: this is a delta payload: give the image it applies to (--old)", ErrNeedSource)
		}
		if err := fillFrom(part, src.Partition, opi, "old partition"); err != nil {
			return nil, err
		}
	}
	if err := part.Truncate(int64(max(npi.GetSize(), m.GetOldPartitionInfo().GetSize()))); err != nil {
		return nil, err
	}
	t := &Targets{Partition: part, Limit: npi.GetSize(), Procedures: map[payload.ProcedureType]Target{}}
	procFiles := map[payload.ProcedureType]*os.File{}
	for _, p := range m.Procedures {
		if p.Type == nil {
			continue
		}
		if _, dup := procFiles[p.GetType()]; dup {
			return nil, fmt.Errorf("%w: two %s procedures", ErrApply, p.GetType())
		}
		f, err := os.CreateTemp(src.TempDir, "augen-"+p.GetType().String()+"-*")
		if err != nil {
			return nil, err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if oi := p.GetOldInfo(); oi != nil {
			if p.GetType() != payload.ProcKernel || src.Kernel == "" {
				return nil, fmt.Errorf("%w: the %s procedure is a delta: give the old file it applies to (--old-kernel)", ErrNeedSource, p.GetType())
			}
			if err := fillFrom(f, src.Kernel, oi, "old kernel"); err != nil {
				return nil, err
			}
		}
		procFiles[p.GetType()] = f
		t.Procedures[p.GetType()] = f
	}
	if err := Apply(pr, t); err != nil {
		return nil, err
	}
	out := []Rebuilt{}
	r, err := hashFile(part, npi.GetSize(), "partition")
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
		r, err := hashFile(f, ni.GetSize(), p.GetType().String())
		if err != nil {
			return nil, err
		}
		out = append(out, r)
		if !bytes.Equal(r.SHA256[:], ni.GetHash()) {
			return out, fmt.Errorf("%w: the rebuilt %s's SHA-256 is %x, its new_info says %x", ErrMismatch, p.GetType(), r.SHA256, ni.GetHash())
		}
	}
	return out, nil
}

// fillFrom copies the first info.size bytes of path into f, checking them
// against info.hash as the client's VerifySource does.
func fillFrom(f *os.File, path string, info *payload.InstallInfo, what string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(in, int64(info.GetSize())))
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

func hashFile(f *os.File, size uint64, name string) (Rebuilt, error) {
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(f, 0, int64(size)))
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
