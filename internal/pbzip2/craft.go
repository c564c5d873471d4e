package pbzip2

// CraftStream returns a bzip2 stream of the given level whose blocks hold
// exactly the given run-length-stage-1 contents, for tests that need
// streams no encoder writes: a block may end in four equal bytes without
// their count. blockCRC and streamCRC, if set, replace the right CRCs
// (given as their argument). A block's content is written as is, so it
// must be at most 900,000 bytes and not empty.
func CraftStream(level int, blocks [][]byte, blockCRC func(i int, right uint32) uint32, streamCRC func(right uint32) uint32) []byte {
	e := NewEncoder()
	e.bw = bitWriter{}
	e.bw.bytes('B', 'Z', 'h', '0'+byte(level))
	var combined uint32
	for i, content := range blocks {
		crc := crc32(unRLE1(content))
		combined = (combined<<1 | combined>>31) ^ crc
		if blockCRC != nil {
			crc = blockCRC(i, crc)
		}
		n := copy(e.block, content)
		e.nblock = n
		clear(e.inUse[:])
		for _, c := range content {
			e.inUse[c] = true
		}
		e.writeBlock(crc)
	}
	if streamCRC != nil {
		combined = streamCRC(combined)
	}
	e.bw.bytes(0x17, 0x72, 0x45, 0x38, 0x50, 0x90)
	e.bw.bits(32, combined)
	return e.bw.finish()
}

// unRLE1 undoes run-length stage 1 (four equal bytes, then a count of
// more); a trailing run of four without its count is left as four.
func unRLE1(b []byte) []byte {
	var out []byte
	last, same := -1, 0
	for _, c := range b {
		if same == 4 {
			for range int(c) {
				out = append(out, byte(last))
			}
			same, last = 0, -1
			continue
		}
		if int(c) == last {
			same++
		} else {
			last, same = int(c), 1
		}
		out = append(out, c)
	}
	return out
}
