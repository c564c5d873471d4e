package apply

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/internal/ctxio"
	"github.com/augen-project/augen/internal/pbzip2"
	"github.com/augen-project/augen/internal/tempfile"
	"github.com/augen-project/augen/payload"
)

// ExtraOptions tune SimulateExtra.
type ExtraOptions struct {
	// TempDir holds the image as it is rebuilt ("" means os.TempDir()).
	TempDir string
	// Unsigned accepts a payload without signatures (one still to be
	// signed: ue-rs itself refuses it).
	Unsigned bool
	// Inspect, if set, is given the rebuilt image once its hash and size
	// are the manifest's (verify checks a sysext image against its /usr).
	Inspect func(r io.ReaderAt, size int64)
}

// SimulateExtra installs an extra payload (oem-*.gz, flatcar-*.gz: a
// systemd-sysext image) the way machines install extras: with ue-rs's
// download_sysext (crate update-format-crau, delta_update::get_data_blobs
// and package.rs verify_signature_on_disk), not with update_engine. Its
// rules are narrower than update_engine's:
//
//   - the payload must carry signatures_offset and signatures_size (ue-rs
//     verifies a signature; it takes any entry that verifies);
//   - every partition operation has data (data_offset and data_length)
//     and exactly one destination extent, not a sparse hole;
//   - REPLACE_BZ data is decompressed, every other type is written as it
//     is: a MOVE has no data and fails, a BSDIFF's patch would be written
//     as the image, so augen refuses both;
//   - each operation's bytes go to start_block * 4096, neither padded to a
//     block nor cut to the extent, and the file is what those writes make
//     (its length is where the last byte was written): its SHA-256 must be
//     new_partition_info.hash;
//   - procedures are ignored.
//
// augen is stricter where ue-rs would write what update_engine refuses:
// data past its extent (extra-data-past-extent), procedures with
// operations (extra-procedures), and a new_partition_info.size other than
// the file's length (extra-size). It reads pr to the end.
func SimulateExtra(ctx context.Context, pr *payload.Reader, opts ExtraOptions) (Rebuilt, error) {
	tempDir := opts.TempDir
	m := pr.Manifest()
	npi := m.GetNewPartitionInfo()
	if npi.GetSize() > MaxPartitionSize {
		return Rebuilt{}, fmt.Errorf("%w: the payload describes an image of %d bytes, over augen's limit of %d", ErrApply, npi.GetSize(), uint64(MaxPartitionSize))
	}
	if (m.SignaturesOffset == nil || m.SignaturesSize == nil) && !opts.Unsigned {
		return Rebuilt{}, fmt.Errorf("%w: an extra payload must be signed: ue-rs refuses one without signatures_offset and signatures_size", ErrApply)
	}
	if m.OldPartitionInfo != nil {
		return Rebuilt{}, fmt.Errorf("%w: an extra payload is a delta (old_partition_info is set): ue-rs installs only full images", ErrApply)
	}
	for i, p := range m.Procedures {
		if len(p.Operations) > 0 {
			return Rebuilt{}, fmt.Errorf("%w: procedures[%d] has operations, which ue-rs ignores: %w", ErrApply, i, augen.Stricter("extra-procedures"))
		}
	}
	// Work: every operation writes at most its extent; the bytes written
	// in all are bounded like update_engine's.
	var work uint64
	for _, op := range m.PartitionOperations {
		work = satAdd(work, opWork(op, MaxPartitionSize))
	}
	if budget := satAdd(satMul(npi.GetSize(), WorkFactor), WorkSlack); work > budget {
		return Rebuilt{}, fmt.Errorf("%w: the operations write %d bytes in all, more than %d× the image (%d bytes allowed): %w", ErrApply, work, WorkFactor, budget, augen.Stricter("work-bound"))
	}
	f, err := tempfile.Create(tempDir, "augen-extra-*")
	if err != nil {
		return Rebuilt{}, err
	}
	defer tempfile.Remove(f)
	var end uint64
	for {
		if err := ctx.Err(); err != nil {
			return Rebuilt{}, err
		}
		op, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Rebuilt{}, err
		}
		if op.Procedure >= 0 {
			continue
		}
		if err := extraRules(op); err != nil {
			return Rebuilt{}, err
		}
		e := op.DstExtents[0]
		size := e.GetNumBlocks() * payload.BlockSize
		data := op.Data
		if op.GetType() == payload.OpReplaceBz {
			data, err = pbzip2.DecodeOne(op.Data, int(min(size, MaxOpBytes)))
			if err != nil {
				if errors.Is(err, pbzip2.ErrStricterThanLibbzip2) {
					return Rebuilt{}, stricterf(op, "bzip2-replace", "%v", err)
				}
				return Rebuilt{}, failf(op, "%v", err)
			}
		}
		if uint64(len(data)) > size {
			return Rebuilt{}, stricterf(op, "extra-data-past-extent", "writes %d bytes into an extent of %d (ue-rs writes on past it; update_engine refuses)", len(data), size)
		}
		off := e.GetStartBlock() * payload.BlockSize
		if off+uint64(len(data)) > MaxPartitionSize {
			return Rebuilt{}, beyond(op, MaxPartitionSize, "writes block %d", e.GetStartBlock())
		}
		if _, err := f.WriteAt(data, int64(off)); err != nil {
			return Rebuilt{}, err
		}
		end = max(end, off+uint64(len(data)))
	}
	r := Rebuilt{Name: "image", Size: end}
	h := sha256.New()
	if _, err := ctxio.Copy(ctx, h, io.NewSectionReader(f, 0, int64(end))); err != nil {
		return Rebuilt{}, err
	}
	h.Sum(r.SHA256[:0])
	if !bytes.Equal(r.SHA256[:], npi.GetHash()) {
		return r, fmt.Errorf("%w: the image ue-rs would install (%d bytes) has SHA-256 %x, new_partition_info says %x", ErrMismatch, end, r.SHA256, npi.GetHash())
	}
	if end != npi.GetSize() {
		return r, fmt.Errorf("%w: the image ue-rs would install is %d bytes, new_partition_info.size says %d: %w", ErrMismatch, end, npi.GetSize(), augen.Stricter("extra-size"))
	}
	if opts.Inspect != nil {
		opts.Inspect(io.NewSectionReader(f, 0, int64(end)), int64(end))
	}
	return r, nil
}

// extraRules are get_data_blobs' checks of one operation.
func extraRules(op *payload.Op) error {
	switch op.GetType() {
	case payload.OpMove:
		return failf(op, "ue-rs cannot apply a MOVE (it has no data_offset; ue-rs writes every operation's data)")
	case payload.OpBsdiff:
		return failf(op, "ue-rs would write a BSDIFF's patch as the image's bytes: an extra payload holds only REPLACE and REPLACE_BZ")
	}
	if len(op.Data) == 0 {
		return failf(op, "no data: ue-rs requires data_offset and data_length on every operation")
	}
	if len(op.DstExtents) != 1 {
		return failf(op, "%d destination extents: ue-rs takes exactly one per operation", len(op.DstExtents))
	}
	if op.DstExtents[0].GetStartBlock() == payload.SparseHole {
		return stricterf(op, "extra-hole", "writes to a sparse hole, whose byte offset ue-rs computes with a wrapping multiplication")
	}
	return nil
}
