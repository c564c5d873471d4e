package payload

import (
	"bytes"
	"crypto/sha256"
	"fmt"
)

// tempBlockStart is update_engine's generator-internal scratch block number
// (kTempBlockStart = 2^60). It must never appear in a payload.
const tempBlockStart = uint64(1) << 60

// checkManifest applies every static rule: the ones update_engine enforces
// while streaming, checked up front so that a bad payload is rejected before
// any data is read, plus structural rules no correct generator breaks.
func (pr *Reader) checkManifest() error {
	m := pr.manifest
	if bs := m.GetBlockSize(); bs != BlockSize {
		return stricterf("block-size", "manifest: block_size %d; augen supports only %d, the size every generator writes", bs, BlockSize)
	}
	npi := m.GetNewPartitionInfo()
	if npi == nil {
		return invalidf("manifest: new_partition_info is missing (the client requires it)")
	}
	if err := checkInfo(npi, "new_partition_info"); err != nil {
		return err
	}
	if opi := m.GetOldPartitionInfo(); opi != nil {
		if err := checkOldInfo(opi, "old_partition_info"); err != nil {
			return err
		}
	}
	for i, op := range m.PartitionOperations {
		pr.ops = append(pr.ops, opRef{proc: -1, op: op})
		_ = i
	}
	for pi, p := range m.Procedures {
		where := fmt.Sprintf("procedures[%d]", pi)
		if p.Type != nil {
			if p.GetNewInfo() == nil {
				return invalidf("manifest: %s (%s) has no new_info", where, p.GetType())
			}
			if ni := p.GetNewInfo(); ni.Size == nil && len(ni.GetHash()) == 0 {
				// KernelVerifierAction skips a file whose new size is 0 and
				// hash empty ("a new kernel was never installed"), after the
				// operations wrote it and it was cut to 0 bytes.
				return stricterf("procedure-new-info", "manifest: %s (%s) has an empty new_info: the client would install the file unverified", where, p.GetType())
			}
			if err := checkInfo(p.GetNewInfo(), where+".new_info"); err != nil {
				return err
			}
			if p.GetOldInfo() != nil {
				if err := checkOldInfo(p.GetOldInfo(), where+".old_info"); err != nil {
					return err
				}
			}
		}
		for _, op := range p.Operations {
			pr.ops = append(pr.ops, opRef{proc: pi, op: op})
		}
	}
	if len(pr.ops) > MaxOperations {
		return stricterf("limits", "manifest: %d operations, more than %d", len(pr.ops), MaxOperations)
	}
	var off uint64
	for i, ref := range pr.ops {
		where := fmt.Sprintf("operation %d", i)
		if ref.proc < 0 {
			where = fmt.Sprintf("partition_operations[%d]", i)
		} else {
			where = fmt.Sprintf("procedures[%d] %s", ref.proc, where)
		}
		if err := checkOp(ref.op, where, pr.opts.MaxBlobSize, ref.proc < 0); err != nil {
			return err
		}
		if n := ref.op.GetDataLength(); n > 0 {
			if uint64(ref.op.GetDataOffset()) != off {
				return invalidf("manifest: %s: data_offset %d, but the data consumed so far ends at %d (blobs must be contiguous, in operation order)",
					where, ref.op.GetDataOffset(), off)
			}
			off += uint64(n)
		}
	}
	pr.dataSize = off
	if (m.SignaturesOffset != nil) != (m.SignaturesSize != nil) {
		return invalidf("manifest: signatures_offset and signatures_size must be set together")
	}
	if m.SignaturesOffset != nil {
		if m.GetSignaturesOffset() != off {
			return invalidf("manifest: signatures_offset %d, but the operations' data ends at %d (the client fails with \"Signatures located at an unexpected data offset\")",
				m.GetSignaturesOffset(), off)
		}
		if s := m.GetSignaturesSize(); s == 0 || s > MaxSignaturesSize {
			return stricterf("limits", "manifest: signatures_size %d is outside 1..%d", s, MaxSignaturesSize)
		}
	}
	end := off + m.GetSignaturesSize()
	for i, op := range m.NoopOperations {
		where := fmt.Sprintf("noop_operations[%d]", i)
		if op.GetType() != OpReplace {
			return stricterf("noop-operations", "manifest: %s has type %s; noop operations are REPLACE", where, op.GetType())
		}
		if op.GetDataLength() > 0 && uint64(op.GetDataOffset())+uint64(op.GetDataLength()) > end {
			return stricterf("noop-operations", "manifest: %s points at data %d..%d, past the end of the payload's data (%d)",
				where, op.GetDataOffset(), uint64(op.GetDataOffset())+uint64(op.GetDataLength()), end)
		}
		for _, e := range op.DstExtents {
			if e.GetStartBlock() != SparseHole {
				return stricterf("noop-operations", "manifest: %s writes to block %d; noop operations may only name sparse holes", where, e.GetStartBlock())
			}
		}
	}
	return nil
}

// checkInfo checks a new_info: the client hashes its size's bytes of the
// rebuilt target and compares the hash.
func checkInfo(info *InstallInfo, where string) error {
	if len(info.GetHash()) != sha256.Size {
		return invalidf("manifest: %s.hash is %d bytes, want a %d-byte SHA-256", where, len(info.GetHash()), sha256.Size)
	}
	if info.Size == nil {
		// The client reads an absent size as 0.
		return stricterf("info-size", "manifest: %s.size is missing", where)
	}
	return nil
}

// checkOldInfo checks an old_info: the client compares its hash with the
// hash of the whole running partition or kernel and never reads its size
// (payload_processor.cc VerifySource), so only the hash matters here.
func checkOldInfo(info *InstallInfo, where string) error {
	if len(info.GetHash()) != sha256.Size {
		return invalidf("manifest: %s.hash is %d bytes, want a %d-byte SHA-256 (the client compares it with the running system's)", where, len(info.GetHash()), sha256.Size)
	}
	return nil
}

func checkOp(op *Operation, where string, maxBlob int64, partition bool) error {
	n := op.GetDataLength()
	if int64(n) > maxBlob {
		return stricterf("limits", "manifest: %s: data_length %d exceeds the limit of %d bytes", where, n, maxBlob)
	}
	if n == 0 && len(op.GetDataSha256Hash()) > 0 {
		// The client checks a hash whenever one is present: over the
		// operation's 0 bytes of data, here.
		if sum := sha256.Sum256(nil); !bytes.Equal(op.GetDataSha256Hash(), sum[:]) {
			return invalidf("manifest: %s has no data but a data_sha256_hash %x; the client hashes its 0 bytes of data and fails", where, op.GetDataSha256Hash())
		}
	}
	if n > 0 {
		if op.DataOffset == nil {
			return stricterf("data-offset", "manifest: %s has data but no data_offset", where)
		}
		if len(op.GetDataSha256Hash()) != sha256.Size {
			return invalidf("manifest: %s has %d bytes of data but no %d-byte data_sha256_hash (the client requires it)",
				where, n, sha256.Size)
		}
	}
	switch op.GetType() {
	case OpReplace, OpReplaceBz:
		if n == 0 {
			return stricterf("replace-without-data", "manifest: %s: %s without data (the client writes nothing)", where, op.GetType())
		}
		if len(op.SrcExtents) > 0 || (op.SrcLength != nil) {
			return stricterf("replace-source", "manifest: %s: %s must not have source extents (the client ignores them)", where, op.GetType())
		}
	case OpMove:
		if n > 0 {
			return invalidf("manifest: %s: MOVE must not carry data (data_length %d)", where, n)
		}
		if blocksOf(op.SrcExtents) != blocksOf(op.DstExtents) {
			return stricterf("move-block-count", "manifest: %s: MOVE reads %d blocks but writes %d", where, blocksOf(op.SrcExtents), blocksOf(op.DstExtents))
		}
	case OpBsdiff:
		if n == 0 {
			return invalidf("manifest: %s: BSDIFF without a patch", where)
		}
		if op.GetSrcLength() > blocksOf(op.SrcExtents)*BlockSize {
			return invalidf("manifest: %s: src_length %d exceeds its %d source blocks", where, op.GetSrcLength(), blocksOf(op.SrcExtents))
		}
		if op.GetDstLength() > blocksOf(op.DstExtents)*BlockSize {
			return invalidf("manifest: %s: dst_length %d exceeds its %d destination blocks", where, op.GetDstLength(), blocksOf(op.DstExtents))
		}
	default:
		return invalidf("manifest: %s: unknown operation type %d", where, op.GetType())
	}
	if len(op.DstExtents) == 0 {
		return stricterf("extent-fields", "manifest: %s has no destination extents", where)
	}
	for _, list := range [][]*Extent{op.SrcExtents, op.DstExtents} {
		for _, e := range list {
			if err := checkExtent(e, where); err != nil {
				return err
			}
		}
	}
	if op.GetType() == OpMove {
		for _, e := range op.SrcExtents {
			if e.GetStartBlock() == SparseHole {
				return invalidf("manifest: %s: MOVE reads from a sparse hole, which the client's read fails on", where)
			}
		}
	}
	if op.GetType() == OpMove {
		for _, e := range op.DstExtents {
			if e.GetStartBlock() == SparseHole {
				return invalidf("manifest: %s: MOVE writes to a sparse hole", where)
			}
		}
	}
	return nil
}

func checkExtent(e *Extent, where string) error {
	if e.StartBlock == nil || e.GetNumBlocks() == 0 {
		return stricterf("extent-fields", "manifest: %s has an extent without start_block or with no blocks", where)
	}
	s := e.GetStartBlock()
	if s == SparseHole {
		if e.GetNumBlocks() > tempBlockStart {
			return stricterf("scratch-blocks", "manifest: %s has a sparse hole of %d blocks", where, e.GetNumBlocks())
		}
		return nil
	}
	if s >= tempBlockStart || e.GetNumBlocks() >= tempBlockStart || s+e.GetNumBlocks() > tempBlockStart {
		return stricterf("scratch-blocks", "manifest: %s has an extent at block %d (+%d) beyond any partition (a generator's scratch block leaked?)", where, s, e.GetNumBlocks())
	}
	return nil
}

func blocksOf(list []*Extent) uint64 {
	var n uint64
	for _, e := range list {
		n += e.GetNumBlocks()
	}
	return n
}
