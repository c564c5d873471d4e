// Package crafted builds small payloads that probe one rule of the
// client's apply each, and mutates them, for the differential tests of
// payload/apply against the real client's code (update_engine's
// DeltaPerformer through delta_generator's debug-apply, and the ChromiumOS
// bspatch it runs). Every case names the verdict the client gives it;
// the tests check augen gives the same (or refuses it under a rule that
// doc/payload-format.md §3.4 lists as stricter than the client).
package crafted

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"

	"google.golang.org/protobuf/proto"

	"github.com/augen-project/augen/internal/pbzip2"
	"github.com/augen-project/augen/payload"
)

// Verdicts a case expects.
const (
	Accept = "accept" // the client applies it; augen accepts it and rebuilds the same bytes
	Reject = "reject" // the client fails; augen refuses it
	// Any other Want is the name of a rule augen is stricter by: the
	// client applies the payload, augen refuses it under that rule.
)

// Blocks is the size of every case's partition, in 4 KiB blocks.
const Blocks = 16

// Case is one crafted payload with the running system it applies to.
type Case struct {
	Name  string
	Class string // the rule it probes, as the classes number them
	Want  string // Accept, Reject or a stricter rule
	M     *payload.Manifest
	// Blobs holds each operation's data in execution order (partition
	// operations, then each procedure's); nil means none.
	Blobs [][]byte
	// Old is the running partition (Blocks blocks), OldKernel the running
	// kernel (nil: the payload has no kernel procedure).
	Old, OldKernel []byte
	// KeepHashes keeps the manifest's new hashes as built; otherwise a
	// test sets them to what the client rebuilt.
	KeepHashes bool
	// Fix, if set, edits the manifest after data offsets and hashes are set.
	Fix func(m *payload.Manifest)
	// Edit, if set, edits the payload's bytes once they are assembled.
	Edit func(b []byte) []byte
}

// Ops returns the case's operations in execution order.
func (c *Case) Ops() []*payload.Operation {
	ops := append([]*payload.Operation(nil), c.M.PartitionOperations...)
	for _, p := range c.M.Procedures {
		ops = append(ops, p.Operations...)
	}
	return ops
}

// Payload assembles the case: header, manifest, data in operation order.
// An operation with a blob gets its data_offset, data_length and
// data_sha256_hash; one without keeps what the case set.
func (c *Case) Payload() ([]byte, error) {
	m := proto.Clone(c.M).(*payload.Manifest)
	ops := append([]*payload.Operation(nil), m.PartitionOperations...)
	for _, p := range m.Procedures {
		ops = append(ops, p.Operations...)
	}
	var data bytes.Buffer
	for i, op := range ops {
		if i >= len(c.Blobs) || c.Blobs[i] == nil {
			continue
		}
		b := c.Blobs[i]
		sum := sha256.Sum256(b)
		op.DataOffset = proto.Uint32(uint32(data.Len()))
		op.DataLength = proto.Uint32(uint32(len(b)))
		op.DataSha256Hash = sum[:]
		data.Write(b)
	}
	if c.Fix != nil {
		c.Fix(m)
	}
	mb, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.WriteString(payload.Magic)
	var hdr [16]byte
	binary.BigEndian.PutUint64(hdr[0:], payload.Version)
	binary.BigEndian.PutUint64(hdr[8:], uint64(len(mb)))
	out.Write(hdr[:])
	out.Write(mb)
	out.Write(data.Bytes())
	if c.Edit != nil {
		return c.Edit(out.Bytes()), nil
	}
	return out.Bytes(), nil
}

// SetNewHashes sets new_partition_info's and the kernel procedure's
// new_info hashes (and the kernel's size) to what was rebuilt.
func (c *Case) SetNewHashes(part []byte, kernel []byte) {
	sum := sha256.Sum256(part)
	c.M.NewPartitionInfo.Hash = sum[:]
	for _, p := range c.M.Procedures {
		if p.GetType() == payload.ProcKernel && kernel != nil {
			ks := sha256.Sum256(kernel)
			p.NewInfo = &payload.InstallInfo{Size: proto.Uint64(uint64(len(kernel))), Hash: ks[:]}
		}
	}
}

// Clone returns a deep copy of c.
func (c *Case) Clone() *Case {
	d := *c
	d.M = proto.Clone(c.M).(*payload.Manifest)
	d.Blobs = make([][]byte, len(c.Blobs))
	for i, b := range c.Blobs {
		if b != nil {
			d.Blobs[i] = append([]byte{}, b...)
		}
	}
	return &d
}

// --- building blocks ---

func rnd(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Ext is an extent.
func Ext(start, n uint64) *payload.Extent {
	return &payload.Extent{StartBlock: proto.Uint64(start), NumBlocks: proto.Uint64(n)}
}

// Hole is a sparse-hole extent of n blocks.
func Hole(n uint64) *payload.Extent { return Ext(payload.SparseHole, n) }

func op(t payload.OperationType, dst ...*payload.Extent) *payload.Operation {
	return &payload.Operation{Type: t.Enum(), DstExtents: dst}
}

func move(src, dst []*payload.Extent) *payload.Operation {
	o := op(payload.OpMove, dst...)
	o.SrcExtents = src
	return o
}

func bsd(src []*payload.Extent, srcLen uint64, dst []*payload.Extent, dstLen uint64) *payload.Operation {
	o := op(payload.OpBsdiff, dst...)
	o.SrcExtents = src
	o.SrcLength = proto.Uint64(srcLen)
	o.DstLength = proto.Uint64(dstLen)
	return o
}

func info(b []byte) *payload.InstallInfo {
	sum := sha256.Sum256(b)
	return &payload.InstallInfo{Size: proto.Uint64(uint64(len(b))), Hash: sum[:]}
}

func newInfo(size uint64) *payload.InstallInfo {
	return &payload.InstallInfo{Size: proto.Uint64(size), Hash: make([]byte, 32)}
}

// BZ is libbzip2's stream of b.
func BZ(b []byte) []byte { return pbzip2.Compress(b, pbzip2.Buffer) }

// Off is bsdiff's sign-magnitude integer.
func Off(v int64) []byte {
	b := make([]byte, 8)
	u := uint64(v)
	if v < 0 {
		u = uint64(-v) | 1<<63
	}
	binary.LittleEndian.PutUint64(b, u)
	return b
}

// Triples encodes control triples.
func Triples(t ...[3]int64) []byte {
	var b []byte
	for _, x := range t {
		b = append(b, Off(x[0])...)
		b = append(b, Off(x[1])...)
		b = append(b, Off(x[2])...)
	}
	return b
}

// RawPatch is a BSDIFF40 patch of the given compressed streams.
func RawPatch(newSize int64, ctrl, diff, extra []byte) []byte {
	var p bytes.Buffer
	p.WriteString("BSDIFF40")
	p.Write(Off(int64(len(ctrl))))
	p.Write(Off(int64(len(diff))))
	p.Write(Off(newSize))
	p.Write(ctrl)
	p.Write(diff)
	p.Write(extra)
	return p.Bytes()
}

// Patch is a BSDIFF40 patch of the given triples, diff and extra bytes.
func Patch(newSize int64, triples [][3]int64, diff, extra []byte) []byte {
	return RawPatch(newSize, BZ(Triples(triples...)), BZ(diff), BZ(extra))
}

// delta makes a partition delta case of ops on old.
func delta(name, class, want string, old []byte, ops []*payload.Operation, blobs [][]byte) *Case {
	return &Case{Name: name, Class: class, Want: want, Old: old, Blobs: blobs, M: &payload.Manifest{
		BlockSize:           proto.Uint32(payload.BlockSize),
		PartitionOperations: ops,
		OldPartitionInfo:    info(old),
		NewPartitionInfo:    newInfo(uint64(len(old))),
	}}
}

// full makes a full payload case (the running partition holds old).
func full(name, class, want string, old []byte, ops []*payload.Operation, blobs [][]byte) *Case {
	c := delta(name, class, want, old, ops, blobs)
	c.M.OldPartitionInfo = nil
	return c
}

// withKernel adds a KERNEL procedure of ops to c, a delta of oldKernel
// (or, with fullKernel, a full one over it) rebuilding newSize bytes.
func withKernel(c *Case, oldKernel []byte, fullKernel bool, newSize uint64, ops []*payload.Operation, blobs [][]byte) *Case {
	p := &payload.Procedure{Type: payload.ProcKernel.Enum(), Operations: ops, NewInfo: newInfo(newSize)}
	if !fullKernel {
		p.OldInfo = info(oldKernel)
	}
	c.M.Procedures = append(c.M.Procedures, p)
	for len(c.Blobs) < len(c.M.PartitionOperations) {
		c.Blobs = append(c.Blobs, nil)
	}
	c.Blobs = append(c.Blobs, blobs...)
	c.OldKernel = oldKernel
	return c
}
