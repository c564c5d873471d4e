package crafted

import (
	"crypto/sha256"

	"google.golang.org/protobuf/proto"

	"github.com/augen-project/augen/internal/pbzip2"
	"github.com/augen-project/augen/payload"
)

const bs = payload.BlockSize

// Cases returns the corpus: at least one case per rule of the client's
// apply that augen models, the in-place hazards both must accept, and the
// rules augen is stricter by. Every case is deterministic.
func Cases() []*Case {
	old := rnd(1, Blocks*bs)
	newData := rnd(2, Blocks*bs)
	kOld := rnd(3, 10000) // 2 blocks and 1,808 bytes
	kNew := rnd(4, 12000)
	blk := func(i int) []byte { return newData[i*bs : (i+1)*bs] }
	span := func(i, n int) []byte { return newData[i*bs : (i+n)*bs] }
	var cs []*Case
	add := func(c *Case) { cs = append(cs, c) }

	// The plain cases every generator writes.
	add(full("full-replace-bz", "baseline", Accept, old, []*payload.Operation{op(payload.OpReplaceBz, Ext(0, Blocks))}, [][]byte{BZ(newData)}))
	add(full("full-replace", "baseline", Accept, old, []*payload.Operation{op(payload.OpReplace, Ext(0, Blocks))}, [][]byte{newData}))
	add(withKernel(full("full-with-kernel", "baseline", Accept, old, []*payload.Operation{op(payload.OpReplaceBz, Ext(0, Blocks))}, [][]byte{BZ(newData)}),
		kOld, true, uint64(len(kNew)), []*payload.Operation{op(payload.OpReplaceBz, Ext(0, 3))}, [][]byte{BZ(kNew)}))

	// 1. A full payload starts from the running system.
	add(full("full-leaves-a-block", "1-full-unwritten", "full-reads-running-system", old, []*payload.Operation{op(payload.OpReplace, Ext(0, Blocks-1))}, [][]byte{span(0, Blocks-1)}))
	add(full("full-moves-unwritten", "1-full-unwritten", "full-reads-running-system", old, []*payload.Operation{
		move([]*payload.Extent{Ext(8, 8)}, []*payload.Extent{Ext(0, 8)}),
		op(payload.OpReplace, Ext(8, 8)),
	}, [][]byte{nil, span(8, 8)}))
	add(full("full-moves-written", "1-full-unwritten", Accept, old, []*payload.Operation{
		op(payload.OpReplace, Ext(0, 8)),
		move([]*payload.Extent{Ext(0, 8)}, []*payload.Extent{Ext(8, 8)}),
	}, [][]byte{span(0, 8), nil}))
	add(full("full-bsdiff-reads-unwritten", "1-full-unwritten", "full-reads-running-system", old, []*payload.Operation{
		bsd([]*payload.Extent{Ext(15, 1)}, bs, []*payload.Extent{Ext(0, 1)}, bs),
		op(payload.OpReplace, Ext(1, 15)),
	}, [][]byte{Patch(bs, [][3]int64{{bs, 0, 0}}, make([]byte, bs), nil), span(1, 15)}))
	add(withKernel(full("full-kernel-short", "1-full-unwritten", "full-reads-running-system", old, []*payload.Operation{op(payload.OpReplaceBz, Ext(0, Blocks))}, [][]byte{BZ(newData)}),
		kOld, true, 12000, []*payload.Operation{op(payload.OpReplace, Ext(0, 2))}, [][]byte{kNew[:2*bs]}))

	// 2. Reads past the end of the kernel file fail in the client.
	kdelta := func(name, class, want string, kops []*payload.Operation, kblobs [][]byte, newSize uint64) *Case {
		c := delta(name, class, want, old, []*payload.Operation{op(payload.OpReplace, Ext(0, 1))}, [][]byte{blk(0)})
		return withKernel(c, kOld, false, newSize, kops, kblobs)
	}
	add(kdelta("kernel-move-partial-last-block", "2-kernel-eof", Reject, []*payload.Operation{move([]*payload.Extent{Ext(2, 1)}, []*payload.Extent{Ext(3, 1)})}, [][]byte{nil}, 4*bs))
	add(kdelta("kernel-move-whole-blocks", "2-kernel-eof", Accept, []*payload.Operation{move([]*payload.Extent{Ext(0, 2)}, []*payload.Extent{Ext(3, 2)})}, [][]byte{nil}, 5*bs))
	add(kdelta("kernel-bsdiff-reads-past-end", "2-kernel-eof", Reject, []*payload.Operation{bsd([]*payload.Extent{Ext(2, 1)}, bs, []*payload.Extent{Ext(2, 1)}, bs)},
		[][]byte{Patch(bs, [][3]int64{{bs, 0, 0}}, make([]byte, bs), nil)}, 3*bs))
	add(kdelta("kernel-bsdiff-source-past-end-unread", "2-kernel-eof", Accept, []*payload.Operation{bsd([]*payload.Extent{Ext(2, 1)}, bs, []*payload.Extent{Ext(2, 1)}, bs)},
		[][]byte{Patch(bs, [][3]int64{{0, bs, 0}}, nil, blk(3))}, 3*bs))
	add(kdelta("kernel-bsdiff-reads-to-end", "2-kernel-eof", Accept, []*payload.Operation{bsd([]*payload.Extent{Ext(2, 1)}, 1808, []*payload.Extent{Ext(2, 1)}, 1808)},
		[][]byte{Patch(1808, [][3]int64{{1808, 0, 0}}, make([]byte, 1808), nil)}, 10000))

	// 3. A hash on an operation without data is checked over 0 bytes.
	mv := func() *payload.Operation { return move([]*payload.Extent{Ext(0, 2)}, []*payload.Extent{Ext(4, 2)}) }
	h := sha256.Sum256([]byte("x"))
	empty := sha256.Sum256(nil)
	c := delta("move-with-hash", "3-move-hash", Reject, old, []*payload.Operation{mv()}, [][]byte{nil})
	c.M.PartitionOperations[0].DataSha256Hash = h[:]
	add(c)
	c = delta("move-with-hash-of-nothing", "3-move-hash", Accept, old, []*payload.Operation{mv()}, [][]byte{nil})
	c.M.PartitionOperations[0].DataSha256Hash = empty[:]
	add(c)

	// 4. BSDIFF's position strings.
	ident := Patch(2*bs, [][3]int64{{2 * bs, 0, 0}}, make([]byte, 2*bs), nil)
	c = delta("bsdiff-no-lengths", "4-bsdiff-lengths", Reject, old, []*payload.Operation{bsd([]*payload.Extent{Ext(0, 2)}, 0, []*payload.Extent{Ext(4, 2)}, 0)}, [][]byte{ident})
	c.M.PartitionOperations[0].SrcLength, c.M.PartitionOperations[0].DstLength = nil, nil
	add(c)
	add(delta("bsdiff-dst-length-0", "4-bsdiff-lengths", Reject, old, []*payload.Operation{bsd([]*payload.Extent{Ext(0, 2)}, 2*bs, []*payload.Extent{Ext(4, 2)}, 0)}, [][]byte{ident}))
	add(delta("bsdiff-src-length-misses-an-extent", "4-bsdiff-lengths", Reject, old, []*payload.Operation{bsd([]*payload.Extent{Ext(0, 2), Ext(9, 1)}, 2*bs, []*payload.Extent{Ext(4, 2)}, 2*bs)}, [][]byte{ident}))
	add(delta("bsdiff-dst-length-misses-an-extent", "4-bsdiff-lengths", Reject, old, []*payload.Operation{bsd([]*payload.Extent{Ext(0, 2)}, 2*bs, []*payload.Extent{Ext(4, 2), Ext(9, 1)}, 2*bs)}, [][]byte{ident}))
	add(delta("bsdiff-lengths-reach-every-extent", "4-bsdiff-lengths", Accept, old, []*payload.Operation{bsd([]*payload.Extent{Ext(0, 1), Ext(7, 1)}, 2*bs, []*payload.Extent{Ext(4, 1), Ext(12, 1)}, 2*bs)}, [][]byte{ident}))
	add(delta("bsdiff-no-source", "4-bsdiff-lengths", Reject, old, []*payload.Operation{bsd(nil, 0, []*payload.Extent{Ext(4, 1)}, bs)}, [][]byte{Patch(bs, [][3]int64{{0, bs, 0}}, nil, blk(1))}))

	// 5. The client zeroes the end of the last destination extent.
	add(delta("bsdiff-tail-in-last-extent", "5-bsdiff-tail", Accept, old, []*payload.Operation{bsd([]*payload.Extent{Ext(0, 1)}, bs, []*payload.Extent{Ext(4, 1), Ext(10, 3)}, bs+100)},
		[][]byte{Patch(bs+100, [][3]int64{{bs, 100, 0}}, make([]byte, bs), blk(2)[:100])}))
	add(delta("bsdiff-tail-after-short-output", "5-bsdiff-tail", Accept, old, []*payload.Operation{bsd([]*payload.Extent{Ext(0, 1)}, bs, []*payload.Extent{Ext(4, 3)}, 3*bs-5)},
		[][]byte{Patch(100, [][3]int64{{100, 0, 0}}, make([]byte, 100), nil)}))
	add(delta("bsdiff-tail-on-a-hole", "5-bsdiff-tail", "bsdiff-hole-tail", old, []*payload.Operation{bsd([]*payload.Extent{Ext(0, 1)}, bs, []*payload.Extent{Ext(4, 1), Hole(2)}, bs+100)},
		[][]byte{Patch(bs+100, [][3]int64{{bs, 100, 0}}, make([]byte, bs), blk(2)[:100])}))
	add(delta("bsdiff-new-size-over-dst", "5-bsdiff-tail", Reject, old, []*payload.Operation{bsd([]*payload.Extent{Ext(0, 1)}, bs, []*payload.Extent{Ext(4, 1)}, 100)},
		[][]byte{Patch(bs, [][3]int64{{bs, 0, 0}}, make([]byte, bs), nil)}))

	// 6. bspatch's bzip2 streams, read with BZ2_bzRead.
	oneTriple := func(n int64) []byte { return BZ(Triples([3]int64{0, n, 0})) }
	bsd1 := func(name, want string, patch []byte) *Case {
		return delta(name, "6-bsdiff-bzip2", want, old, []*payload.Operation{bsd([]*payload.Extent{Ext(0, 1)}, bs, []*payload.Extent{Ext(5, 1)}, bs)}, [][]byte{patch})
	}
	half := blk(3)[:bs/2]
	rest := blk(3)[bs/2:]
	add(bsd1("bsdiff-extra-two-streams-read-across", Reject, RawPatch(bs, oneTriple(bs), BZ(nil), append(BZ(half), BZ(rest)...))))
	add(bsd1("bsdiff-extra-two-streams-first-only", Accept, RawPatch(bs, oneTriple(bs), BZ(nil), append(BZ(blk(3)), BZ(rest)...))))
	badCRC := func(b []byte) []byte {
		return pbzip2.CraftStream(9, [][]byte{b}, func(int, uint32) uint32 { return 0x12345678 }, nil)
	}
	add(bsd1("bsdiff-bad-block-crc-read-to-its-end", Reject, RawPatch(bs, oneTriple(bs), BZ(nil), badCRC(blk(3)))))
	add(bsd1("bsdiff-bad-block-crc-read-in-part", Accept, RawPatch(bs, oneTriple(bs), BZ(nil), badCRC(append(append([]byte{}, blk(3)...), 1, 2, 3)))))
	badStream := func(b []byte) []byte {
		return pbzip2.CraftStream(9, [][]byte{b}, nil, func(r uint32) uint32 { return r ^ 1 })
	}
	add(bsd1("bsdiff-bad-stream-crc-read-to-the-end", Reject, RawPatch(bs, oneTriple(bs), BZ(nil), badStream(blk(3)))))
	add(bsd1("bsdiff-bad-stream-crc-read-in-part", Accept, RawPatch(bs, oneTriple(bs), BZ(nil), badStream(append(append([]byte{}, blk(3)...), 9)))))
	pend := append(append([]byte{}, blk(3)[:bs-4]...), 7, 7, 7, 7) // ends in a run with no count
	pend[0] = 200                                                  // libbzip2 then emits 200 more 7s
	add(bsd1("bsdiff-pending-run-read-to-it", Accept, RawPatch(bs, oneTriple(bs), BZ(nil), pbzip2.CraftStream(9, [][]byte{pend}, nil, nil))))
	pend2 := append(append([]byte{}, pend[:bs-8]...), 7, 7, 7, 7) // 4 bytes shorter
	pend2[0] = 1
	add(bsd1("bsdiff-pending-run-read-past-it", Reject, RawPatch(bs, oneTriple(bs), BZ(nil), append(pbzip2.CraftStream(9, [][]byte{pend2}, nil, nil), BZ(make([]byte, 8))...))))
	eos := BZ(blk(3))
	add(bsd1("bsdiff-extra-without-end-marker", "bzip2-extra", RawPatch(bs, oneTriple(bs), BZ(nil), eos[:len(eos)-5])))
	add(bsd1("bsdiff-empty-diff-stream", Accept, RawPatch(bs, oneTriple(bs), BZ(nil), BZ(blk(3)))))
	add(bsd1("bsdiff-level-1-streams", Accept, RawPatch(bs, level1(Triples([3]int64{bs, 0, 0})), level1(make([]byte, bs)), level1(nil))))

	// 7. bspatch cannot seek past the old data's end.
	seek := func(name, want string, triples [][3]int64, diff, extra []byte) *Case {
		return delta(name, "7-bsdiff-seek", want, old, []*payload.Operation{bsd([]*payload.Extent{Ext(0, 1)}, bs, []*payload.Extent{Ext(6, 1)}, bs)}, [][]byte{Patch(bs, triples, diff, extra)})
	}
	add(seek("bsdiff-seeks-past-old", Reject, [][3]int64{{0, 8, bs + 1}, {bs - 8, 0, 0}}, make([]byte, bs-8), blk(1)[:8]))
	add(seek("bsdiff-seeks-to-old-end", Accept, [][3]int64{{0, 8, bs - 8}, {bs - 8, 0, 0}}, make([]byte, bs-8), blk(1)[:8]))
	add(seek("bsdiff-seeks-before-old", Accept, [][3]int64{{0, 8, -100}, {bs - 8, 0, 0}}, blk(2)[:bs-8], blk(1)[:8]))
	add(seek("bsdiff-seeks-past-old-last", Accept, [][3]int64{{bs, 0, 1 << 40}}, make([]byte, bs), nil))
	add(seek("bsdiff-adds-past-old-end", Accept, [][3]int64{{0, 8, bs - 16}, {bs - 8, 0, 0}}, blk(2)[:bs-8], blk(1)[:8]))
	add(seek("bsdiff-idle-triples", "bsdiff-idle-triples", [][3]int64{{0, 0, 1}, {0, 0, 1}, {0, 0, 1}, {bs, 0, 0}}, make([]byte, bs), nil))

	// 8. REPLACE_BZ as BzipExtentWriter drives libbzip2.
	rbz := func(name, want string, blob []byte) *Case {
		return delta(name, "8-replace-bz", want, old, []*payload.Operation{op(payload.OpReplaceBz, Ext(3, 2))}, [][]byte{blob})
	}
	p8 := append(append([]byte{}, span(3, 2)[:2*bs-4]...), 5, 5, 5, 5)
	add(rbz("replace-bz-pending-run", Reject, pbzip2.CraftStream(9, [][]byte{p8}, nil, nil)))
	add(rbz("replace-bz-bad-block-crc", Reject, badCRC(span(3, 2))))
	add(rbz("replace-bz-bad-stream-crc", Reject, badStream(span(3, 2))))
	// Zeros: runs of 4+255, whose CRC the decoder takes by table.
	add(rbz("replace-bz-zeros", Accept, BZ(make([]byte, 2*bs))))
	add(rbz("replace-bz-zeros-bad-block-crc", Reject, badCRC(make([]byte, 2*bs))))
	add(rbz("replace-bz-trailing-byte", Reject, append(BZ(span(3, 2)), 0)))
	add(rbz("replace-bz-two-streams", Reject, append(BZ(span(3, 1)), BZ(blk(4))...)))
	add(rbz("replace-bz-no-blocks", Accept, BZ(nil)))
	add(rbz("replace-bz-two-blocks", Accept, pbzip2.CraftStream(9, [][]byte{span(3, 1), blk(4)}, nil, nil)))
	tr := BZ(span(3, 2))
	add(rbz("replace-bz-without-end-marker", "bzip2-replace", tr[:len(tr)-10]))
	add(rbz("replace-bz-too-much", Reject, BZ(span(0, 3))))
	add(rbz("replace-bz-not-bzip2", Reject, []byte("not bzip2 at all")))
	// Found by the mutating run: extents past the partition's end, which
	// the client's device takes (a later operation rewrites the blocks).
	add(delta("replace-bz-past-the-partition", "8-replace-bz", "beyond-target", old, []*payload.Operation{
		op(payload.OpReplaceBz, Ext(2, Blocks)), op(payload.OpReplaceBz, Ext(0, Blocks)),
	}, [][]byte{BZ(newData), BZ(newData)}))

	// In-place hazards both must accept.
	add(delta("move-overlapping", "in-place", Accept, old, []*payload.Operation{move([]*payload.Extent{Ext(0, 4)}, []*payload.Extent{Ext(2, 4)})}, [][]byte{nil}))
	add(delta("move-duplicated-source", "in-place", Accept, old, []*payload.Operation{move([]*payload.Extent{Ext(0, 2), Ext(0, 2)}, []*payload.Extent{Ext(4, 4)})}, [][]byte{nil}))
	add(delta("bsdiff-overlapping", "in-place", Accept, old, []*payload.Operation{bsd([]*payload.Extent{Ext(0, 4)}, 4*bs, []*payload.Extent{Ext(1, 4)}, 4*bs)},
		[][]byte{Patch(4*bs, [][3]int64{{4 * bs, 0, 0}}, make([]byte, 4*bs), nil)}))
	add(delta("bsdiff-duplicated-source", "in-place", Accept, old, []*payload.Operation{bsd([]*payload.Extent{Ext(0, 1), Ext(0, 1)}, 2*bs, []*payload.Extent{Ext(8, 2)}, 2*bs)},
		[][]byte{Patch(2*bs, [][3]int64{{2 * bs, 0, 0}}, rnd(9, 2*bs), nil)}))
	add(delta("bsdiff-source-hole", "in-place", Accept, old, []*payload.Operation{bsd([]*payload.Extent{Hole(1)}, bs, []*payload.Extent{Ext(8, 1)}, bs)},
		[][]byte{Patch(bs, [][3]int64{{bs, 0, 0}}, blk(8), nil)}))
	add(delta("replace-short-data", "in-place", Accept, old, []*payload.Operation{op(payload.OpReplace, Ext(2, 3))}, [][]byte{blk(2)[:100]}))
	add(delta("replace-through-a-hole", "in-place", Accept, old, []*payload.Operation{op(payload.OpReplace, Hole(1), Ext(5, 1))}, [][]byte{span(4, 2)}))
	add(delta("replace-too-much", "in-place", Reject, old, []*payload.Operation{op(payload.OpReplace, Ext(5, 1))}, [][]byte{span(4, 2)}))
	add(delta("bsdiff-a-real-diff", "in-place", Accept, old, []*payload.Operation{bsd([]*payload.Extent{Ext(0, 4)}, 4*bs, []*payload.Extent{Ext(0, 4)}, 4*bs)},
		[][]byte{realDiff(old[:4*bs], edit(old[:4*bs]))}))

	// 10 and the rules augen is stricter by.
	var ops []*payload.Operation
	var blobs [][]byte
	for range 520 {
		ops = append(ops, move([]*payload.Extent{Ext(0, Blocks)}, []*payload.Extent{Ext(0, Blocks)}))
		blobs = append(blobs, nil)
	}
	add(delta("work-bound", "10-work", "work-bound", old, ops, blobs))
	c = delta("replace-without-data", "stricter", "replace-without-data", old, []*payload.Operation{op(payload.OpReplace, Ext(1, 1))}, [][]byte{nil})
	add(c)
	c = delta("move-into-nothing", "stricter", "extent-fields", old, []*payload.Operation{move(nil, nil)}, [][]byte{nil})
	add(c)
	c = delta("unknown-field", "stricter", "canonical-encoding", old, []*payload.Operation{op(payload.OpReplace, Ext(1, 1))}, [][]byte{blk(1)})
	c.Fix = func(m *payload.Manifest) { m.ProtoReflect().SetUnknown([]byte{0x58, 0x01}) } // field 11, varint 1
	add(c)
	c = delta("partition-size-unaligned", "stricter", "partition-size", old, []*payload.Operation{op(payload.OpReplace, Ext(1, 1))}, [][]byte{blk(1)})
	c.M.NewPartitionInfo.Size = proto.Uint64(Blocks*bs - 100)
	add(c)
	cs = append(cs, machineCases(old, kOld, blk)...)
	return cs
}

// level1 is the stream BZh1 writes for b (the encoder's output with its
// level byte changed: a block this small is the same at every level).
func level1(b []byte) []byte {
	s := BZ(b)
	s[3] = '1'
	return s
}

func edit(b []byte) []byte {
	out := append([]byte{}, b...)
	for i := 100; i < len(out); i += 997 {
		out[i] ^= 0x5a
	}
	copy(out[5000:], []byte("a new string in the middle of the old data"))
	return out
}
