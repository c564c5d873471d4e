package crafted

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"

	"google.golang.org/protobuf/proto"

	"github.com/augen-project/augen/internal/pbzip2"
	"github.com/augen-project/augen/payload"
)

// Mutate returns a copy of c changed in 1 to 3 places, the way a crafted
// payload would differ from an honest one: an operation's type, extents,
// lengths or hash; its data (bytes flipped, cut or added; a patch's header,
// control triples or streams; a bzip2 stream's blocks); operations
// duplicated, dropped or swapped. Its hashes are left to be set from the
// client's result.
func Mutate(r *rand.Rand, c *Case) *Case {
	d := c.Clone()
	d.Name = c.Name + "~"
	d.KeepHashes = false
	var fixes []func(m *payload.Manifest)
	for n := 1 + r.IntN(3); n > 0; n-- {
		ops := d.Ops()
		if len(ops) == 0 {
			break
		}
		i := r.IntN(len(ops))
		o := ops[i]
		for len(d.Blobs) < len(ops) {
			d.Blobs = append(d.Blobs, nil)
		}
		switch r.IntN(12) {
		case 0:
			o.Type = payload.OperationType(r.IntN(4)).Enum()
		case 1, 2:
			mutateExtents(r, &o.DstExtents)
		case 3:
			mutateExtents(r, &o.SrcExtents)
		case 4:
			o.SrcLength = mutateLen(r, o.SrcLength)
		case 5:
			o.DstLength = mutateLen(r, o.DstLength)
		case 6, 7, 8:
			d.Blobs[i] = mutateData(r, d.Blobs[i])
		case 9:
			k := i
			choice := r.IntN(3)
			fixes = append(fixes, func(m *payload.Manifest) {
				all := append(append([]*payload.Operation(nil), m.PartitionOperations...), procOps(m)...)
				if k >= len(all) {
					return
				}
				switch choice {
				case 0:
					all[k].DataSha256Hash = nil
				case 1:
					s := sha256.Sum256(nil)
					all[k].DataSha256Hash = s[:]
				default:
					all[k].DataSha256Hash = bytes.Repeat([]byte{0x42}, 32)
				}
			})
		case 10:
			if len(d.M.PartitionOperations) > 1 {
				a, b := r.IntN(len(d.M.PartitionOperations)), r.IntN(len(d.M.PartitionOperations))
				pos := d.M.PartitionOperations
				pos[a], pos[b] = pos[b], pos[a]
				d.Blobs[a], d.Blobs[b] = d.Blobs[b], d.Blobs[a]
			}
		case 11:
			if i < len(d.M.PartitionOperations) && len(d.M.PartitionOperations) < 64 {
				d.M.PartitionOperations = append(d.M.PartitionOperations, proto.Clone(o).(*payload.Operation))
				blobs := append([][]byte(nil), d.Blobs[:len(d.M.PartitionOperations)-1]...)
				blobs = append(blobs, d.Blobs[i])
				d.Blobs = append(blobs, d.Blobs[len(d.M.PartitionOperations)-1:]...)
			}
		}
	}
	if len(fixes) > 0 {
		d.Fix = func(m *payload.Manifest) {
			for _, f := range fixes {
				f(m)
			}
		}
	}
	return d
}

func procOps(m *payload.Manifest) []*payload.Operation {
	var out []*payload.Operation
	for _, p := range m.Procedures {
		out = append(out, p.Operations...)
	}
	return out
}

func mutateExtents(r *rand.Rand, list *[]*payload.Extent) {
	l := *list
	switch k := r.IntN(6); {
	case k == 0 || len(l) == 0:
		*list = append(l, Ext(uint64(r.IntN(Blocks+2)), uint64(1+r.IntN(4))))
	case k == 1:
		*list = l[:len(l)-1]
	case k == 2:
		l[r.IntN(len(l))] = Hole(uint64(1 + r.IntN(3)))
	default:
		e := l[r.IntN(len(l))]
		if r.IntN(2) == 0 {
			e.StartBlock = proto.Uint64(uint64(max(0, int(e.GetStartBlock()%64)+r.IntN(5)-2)))
		} else {
			e.NumBlocks = proto.Uint64(uint64(max(1, int(e.GetNumBlocks()%64)+r.IntN(5)-2)))
		}
	}
}

func mutateLen(r *rand.Rand, v *uint64) *uint64 {
	switch r.IntN(5) {
	case 0:
		return nil
	case 1:
		return proto.Uint64(0)
	default:
		n := int64(0)
		if v != nil {
			n = int64(*v)
		}
		deltas := []int64{-bs, -1, 1, bs, -100, 100, -bs + 1}
		return proto.Uint64(uint64(max(0, n+deltas[r.IntN(len(deltas))])))
	}
}

// mutateData changes a blob: a BSDIFF40 patch structurally, a bzip2 stream
// or anything else bytewise.
func mutateData(r *rand.Rand, b []byte) []byte {
	if len(b) == 0 {
		if r.IntN(2) == 0 {
			return BZ(rnd(r.Uint64(), 1+r.IntN(3*bs)))
		}
		return rnd(r.Uint64(), 1+r.IntN(bs))
	}
	if len(b) >= 32 && string(b[:8]) == "BSDIFF40" && r.IntN(3) > 0 {
		return mutatePatch(r, b)
	}
	out := append([]byte{}, b...)
	switch r.IntN(4) {
	case 0:
		out[r.IntN(len(out))] ^= byte(1 << r.IntN(8))
	case 1:
		return out[:r.IntN(len(out))]
	case 2:
		return append(out, rnd(r.Uint64(), 1+r.IntN(16))...)
	default:
		if d, err := pbzip2.DecodeOne(b, 1<<20); err == nil && len(d) > 0 {
			d[r.IntN(len(d))]++
			return BZ(d)
		}
		out[len(out)-1] ^= 1
	}
	return out
}

// mutatePatch changes a patch's header, triples or streams.
func mutatePatch(r *rand.Rand, p []byte) []byte {
	ctrlLen, diffLen := int(offtin(p[8:16])), int(offtin(p[16:24]))
	if ctrlLen < 0 || diffLen < 0 || 32+ctrlLen+diffLen > len(p) {
		return p
	}
	newSize := offtin(p[24:32])
	ctrl, diff, extra := p[32:32+ctrlLen], p[32+ctrlLen:32+ctrlLen+diffLen], p[32+ctrlLen+diffLen:]
	dec := func(s []byte) []byte {
		d, err := pbzip2.DecodeOne(s, 1<<20)
		if err != nil {
			return nil
		}
		return d
	}
	switch r.IntN(6) {
	case 0:
		newSize += []int64{-1, 1, -100, bs}[r.IntN(4)]
	case 1, 2:
		t := dec(ctrl)
		if len(t) >= 24 {
			k := r.IntN(len(t)/8) * 8
			v := offtin(t[k:k+8]) + []int64{-1, 1, -8, 8, -bs, bs, -1 << 20}[r.IntN(7)]
			copy(t[k:], Off(v))
			ctrl = BZ(t)
		}
	case 3:
		if d := dec(diff); len(d) > 0 {
			d[r.IntN(len(d))] ^= 0x80
			diff = BZ(d)
		}
	case 4:
		if d := dec(extra); r.IntN(2) == 0 && len(d) > 0 {
			extra = BZ(d[:r.IntN(len(d))])
		} else {
			extra = append(append([]byte{}, extra...), BZ([]byte("more"))...)
		}
	default:
		x := append([]byte{}, p...)
		x[32+r.IntN(len(x)-32)] ^= byte(1 << r.IntN(8))
		return x
	}
	return RawPatch(newSize, ctrl, diff, extra)
}

func offtin(b []byte) int64 {
	v := int64(uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 | uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7]&0x7f)<<56)
	if b[7]&0x80 != 0 {
		return -v
	}
	return v
}
