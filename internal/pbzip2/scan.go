package pbzip2

import "bytes"

// A magic can start at any bit. For each of the 8 bit shifts it has a run
// of 5 whole bytes in the middle; bytes.Index finds those fast, and every
// hit is then checked on all 48 bits.
type pattern struct {
	shift uint   // the magic starts this many bits into its first byte
	mid   []byte // the 5 whole bytes after that first byte
}

func patterns(magic uint64) []pattern {
	var ps []pattern
	for s := uint(0); s < 8; s++ {
		// 48 bits starting s bits into byte 0 span bytes 0..6.
		v := magic << (64 - 48 - s) // left-align so that bit 63-s is the magic's first bit
		var b [8]byte
		for i := 0; i < 8; i++ {
			b[i] = byte(v >> (56 - 8*i))
		}
		ps = append(ps, pattern{shift: s, mid: append([]byte(nil), b[1:6]...)})
	}
	return ps
}

var (
	blockPatterns = patterns(blockMagic)
	endPatterns   = patterns(endMagic)
)

// at48 reads 48 bits at a bit offset of data (0 past the end).
func at48(data []byte, bit uint64) uint64 {
	var v uint64
	for i := uint64(0); i < 7; i++ {
		v <<= 8
		if p := bit/8 + i; p < uint64(len(data)) {
			v |= uint64(data[p])
		}
	}
	return v >> (8 - bit%8) & (1<<48 - 1)
}

// candidate is a place where a magic's 48 bits appear.
type candidate struct {
	bit uint64
	end bool // end-of-stream magic (else block magic)
}

// scan finds every magic starting at a bit in [from, to) of data (bits
// relative to data), in order.
func scan(data []byte, from, to uint64) []candidate {
	var out []candidate
	for _, kind := range []struct {
		ps    []pattern
		magic uint64
		end   bool
	}{{blockPatterns, blockMagic, false}, {endPatterns, endMagic, true}} {
		for _, p := range kind.ps {
			// The first byte of the magic is at byte (bit-p.shift)/8.
			for i := int(from / 8); ; {
				j := bytes.Index(data[min(i+1, len(data)):], p.mid)
				if j < 0 {
					break
				}
				start := i + 1 + j - 1 // the byte holding the magic's first bits
				i = start + 1
				if start < 0 {
					continue
				}
				bit := uint64(start)*8 + uint64(p.shift)
				if bit < from || bit >= to {
					if bit >= to {
						break
					}
					continue
				}
				if at48(data, bit) == kind.magic {
					out = append(out, candidate{bit: bit, end: kind.end})
				}
			}
		}
	}
	sortCandidates(out)
	return out
}

func sortCandidates(c []candidate) {
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j].bit < c[j-1].bit; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
}
