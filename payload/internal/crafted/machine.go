package crafted

import (
	"encoding/binary"
	"math/rand/v2"

	"google.golang.org/protobuf/proto"

	"github.com/augen-project/augen/payload"
)

// The machine a payload lands on: the running partition is a device the
// client hashes and reads to its end (FilesystemCopierAction,
// payload_processor.cc VerifySource), the running kernel a file it hashes
// whole (KernelCopierAction). These cases and MutateMachine vary the
// machine as the other cases vary the payload.

// machineCases are the corpus's cases about the running system.
func machineCases(old, kOld []byte, blk func(int) []byte) []*Case {
	var cs []*Case
	add := func(c *Case) { cs = append(cs, c) }
	zeros := func(n int) []byte { return make([]byte, n) }
	one := []*payload.Operation{op(payload.OpReplace, Ext(0, 1))}
	oneBlob := [][]byte{blk(0)}

	// A partition larger than the image, the rest zeros (Flatcar's 2 GiB
	// partitions holding a 1 GiB image): a delta made for it applies; one
	// made for the image's size does not.
	padded := append(append([]byte{}, old...), zeros(4*bs)...)
	c := delta("machine-partition-larger-made-for-it", "machine-partition", Accept, padded, one, oneBlob)
	c.M.NewPartitionInfo.Size = proto.Uint64(Blocks * bs)
	add(c)
	c = delta("machine-partition-larger-made-for-the-image", "machine-partition", Reject, padded, one, oneBlob)
	c.M.OldPartitionInfo = info(old)
	c.M.NewPartitionInfo.Size = proto.Uint64(Blocks * bs)
	add(c)
	c = delta("machine-partition-smaller-than-made-for", "machine-partition", Reject, old, one, oneBlob)
	c.M.OldPartitionInfo = info(padded)
	add(c)
	// Old info that hashes a prefix, or nothing: the client hashes the
	// whole partition.
	c = delta("machine-old-info-prefix", "machine-old-info", Reject, old, one, oneBlob)
	c.M.OldPartitionInfo = info(old[:12*bs])
	add(c)
	c = delta("machine-old-info-nothing", "machine-old-info", Reject, old, one, oneBlob)
	c.M.OldPartitionInfo = info(nil)
	add(c)
	// The size is never read: only the hash is compared.
	c = delta("machine-old-info-size-differs", "machine-old-info", Accept, old, one, oneBlob)
	c.M.OldPartitionInfo.Size = proto.Uint64(12345)
	add(c)
	c = delta("machine-old-info-no-size", "machine-old-info", Accept, old, one, oneBlob)
	c.M.OldPartitionInfo.Size = nil
	add(c)
	// A partition that ends mid-block: reading its last block fails.
	short := old[:12*bs-100]
	c = delta("machine-partition-partial-block-read", "machine-partition", Reject, short, []*payload.Operation{move([]*payload.Extent{Ext(11, 1)}, []*payload.Extent{Ext(0, 1)})}, [][]byte{nil})
	c.M.NewPartitionInfo.Size = proto.Uint64(11 * bs)
	add(c)
	c = delta("machine-partition-partial-block-unread", "machine-partition", Accept, short, one, oneBlob)
	c.M.NewPartitionInfo.Size = proto.Uint64(11 * bs)
	add(c)
	// Reads past the end of a shorter partition fail in the client.
	c = delta("machine-move-reads-past-partition", "machine-partition", Reject, old[:12*bs], []*payload.Operation{move([]*payload.Extent{Ext(12, 1)}, []*payload.Extent{Ext(0, 1)})}, [][]byte{nil})
	c.M.NewPartitionInfo.Size = proto.Uint64(12 * bs)
	add(c)
	c = delta("machine-bsdiff-reads-past-partition", "machine-partition", Reject, old[:12*bs], []*payload.Operation{bsd([]*payload.Extent{Ext(12, 1)}, bs, []*payload.Extent{Ext(0, 1)}, bs)},
		[][]byte{Patch(bs, [][3]int64{{bs, 0, 0}}, make([]byte, bs), nil)})
	c.M.NewPartitionInfo.Size = proto.Uint64(12 * bs)
	add(c)
	// A new partition larger than the running one: the client's other
	// partition is as large; debug-apply's file grows only where written.
	c = delta("machine-new-size-past-old-written", "machine-new-size", "partition-grows", old, []*payload.Operation{op(payload.OpReplace, Ext(0, Blocks+2))}, [][]byte{append(append([]byte{}, old...), rnd(6, 2*bs)...)})
	c.M.NewPartitionInfo.Size = proto.Uint64((Blocks + 2) * bs)
	add(c)
	c = delta("machine-new-size-past-old-unwritten", "machine-new-size", Reject, old, one, oneBlob)
	c.M.NewPartitionInfo.Size = proto.Uint64((Blocks + 2) * bs)
	add(c)

	// The old kernel is the whole file.
	kdelta := func(name, class, want string, machineKernel []byte, kops []*payload.Operation, kblobs [][]byte, newSize uint64) *Case {
		c := delta(name, class, want, old, one, oneBlob)
		c = withKernel(c, machineKernel, false, newSize, kops, kblobs)
		return c
	}
	longer := append(append([]byte{}, kOld...), rnd(5, 5000)...) // 3 blocks and 2,712 bytes
	add(kdelta("machine-kernel-longer-made-for-it", "machine-kernel", Accept, longer, []*payload.Operation{move([]*payload.Extent{Ext(2, 1)}, []*payload.Extent{Ext(4, 1)})}, [][]byte{nil}, 5*bs))
	c = kdelta("machine-kernel-info-prefix", "machine-kernel", Reject, kOld, []*payload.Operation{move([]*payload.Extent{Ext(0, 1)}, []*payload.Extent{Ext(3, 1)})}, [][]byte{nil}, 4*bs)
	c.M.Procedures[0].OldInfo = info(kOld[:2*bs])
	add(c)
	c = kdelta("machine-kernel-info-nothing", "machine-kernel", Reject, kOld, []*payload.Operation{move([]*payload.Extent{Ext(0, 1)}, []*payload.Extent{Ext(3, 1)})}, [][]byte{nil}, 4*bs)
	c.M.Procedures[0].OldInfo = info(nil)
	add(c)
	c = kdelta("machine-kernel-shorter-reads-past-end", "machine-kernel", Reject, kOld[:9000], []*payload.Operation{move([]*payload.Extent{Ext(2, 1)}, []*payload.Extent{Ext(3, 1)})}, [][]byte{nil}, 4*bs)
	add(c)
	c = kdelta("machine-kernel-info-size-differs", "machine-kernel", Accept, kOld, []*payload.Operation{move([]*payload.Extent{Ext(0, 2)}, []*payload.Extent{Ext(3, 2)})}, [][]byte{nil}, 5*bs)
	c.M.Procedures[0].OldInfo.Size = proto.Uint64(7)
	add(c)

	// The stricter refusals that name their rule.
	c = delta("no-partition", "stricter", "no-partition", old, nil, nil)
	c.M.NewPartitionInfo.Size = proto.Uint64(0)
	add(c)
	c = kdelta("kernel-empty-new-info", "stricter", "procedure-new-info", kOld, []*payload.Operation{op(payload.OpReplace, Ext(0, 1))}, [][]byte{blk(2)}, bs)
	c.Fix = func(m *payload.Manifest) { m.Procedures[0].NewInfo = &payload.InstallInfo{} }
	add(c)
	c = delta("untyped-procedure-bad-hash", "stricter", "skipped-operation-hash", old, one, oneBlob)
	c.M.Procedures = append(c.M.Procedures, &payload.Procedure{Operations: []*payload.Operation{op(payload.OpReplace, Ext(0, 1))}})
	c.Blobs = append(c.Blobs, blk(3))
	c.Fix = func(m *payload.Manifest) { m.Procedures[0].Operations[0].DataSha256Hash = make([]byte, 32) }
	add(c)
	c = delta("pcr-policy-delta", "stricter", "delta-procedure", old, one, oneBlob)
	c.M.Procedures = append(c.M.Procedures, &payload.Procedure{Type: payload.ProcPCRPolicy.Enum(), OldInfo: info(blk(4)), NewInfo: newInfo(bs),
		Operations: []*payload.Operation{op(payload.OpReplace, Ext(0, 1))}})
	c.Blobs = append(c.Blobs, blk(5))
	add(c)
	for _, v := range []uint64{0, 2} {
		c = delta("header-version-"+string(rune('0'+v)), "stricter", "header-version", old, one, oneBlob)
		c.Edit = func(b []byte) []byte { binary.BigEndian.PutUint64(b[4:12], v); return b }
		add(c)
	}
	c = delta("new-info-without-size", "stricter", "info-size", old, one, oneBlob)
	c.Fix = func(m *payload.Manifest) { m.NewPartitionInfo.Size = nil }
	add(c)
	return cs
}

// MutateMachine returns a copy of the delta c with the machine changed:
// the running partition shorter, longer (zeros, as Flatcar's larger
// partitions hold an image) or ending mid-block, with old info over the
// new machine or left as it was; old info over a prefix or nothing; a new
// size past the running partition; the running kernel shorter or longer.
// It returns nil when c is not a delta.
func MutateMachine(r *rand.Rand, c *Case) *Case {
	if c.M.OldPartitionInfo == nil {
		return nil
	}
	d := c.Clone()
	d.Name = c.Name + "~machine"
	d.KeepHashes = false
	d.Old = append([]byte{}, c.Old...)
	if c.OldKernel != nil {
		d.OldKernel = append([]byte{}, c.OldKernel...)
	}
	resize := func(b []byte) []byte {
		switch r.IntN(4) {
		case 0: // shorter by whole blocks
			return b[:max(len(b)-bs*(1+r.IntN(3)), 0)]
		case 1: // longer by zero blocks
			return append(b, make([]byte, bs*(1+r.IntN(4)))...)
		case 2: // shorter by a part of a block
			return b[:max(len(b)-1-r.IntN(bs-1), 0)]
		default: // longer by a part of a block
			return append(b, make([]byte, 1+r.IntN(bs-1))...)
		}
	}
	for n := 1 + r.IntN(2); n > 0; n-- {
		switch r.IntN(8) {
		case 0, 1: // a machine of another size, the delta made for it
			d.Old = resize(d.Old)
			d.M.OldPartitionInfo = info(d.Old)
			if r.IntN(2) == 0 {
				d.M.NewPartitionInfo.Size = proto.Uint64(uint64(len(d.Old)) / bs * bs)
			}
		case 2: // a machine of another size, the delta not made for it
			d.Old = resize(d.Old)
		case 3: // old info over a prefix, or over nothing
			if r.IntN(2) == 0 {
				d.M.OldPartitionInfo = info(nil)
			} else {
				d.M.OldPartitionInfo = info(d.Old[:r.IntN(len(d.Old)+1)])
			}
		case 4: // a new partition past the running one
			d.M.NewPartitionInfo.Size = proto.Uint64(uint64(len(d.Old)/bs+1+r.IntN(3)) * bs)
		case 5, 6: // a kernel of another size, the delta made for it or not
			for _, p := range d.M.Procedures {
				if p.GetType() == payload.ProcKernel && p.OldInfo != nil && d.OldKernel != nil {
					d.OldKernel = resize(d.OldKernel)
					if r.IntN(3) > 0 {
						p.OldInfo = info(d.OldKernel)
					}
				}
			}
		default: // kernel old info over a prefix or nothing
			for _, p := range d.M.Procedures {
				if p.GetType() == payload.ProcKernel && p.OldInfo != nil && d.OldKernel != nil {
					p.OldInfo = info(d.OldKernel[:r.IntN(len(d.OldKernel)+1)])
				}
			}
		}
	}
	return d
}
