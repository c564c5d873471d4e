package pbzip2

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// rle1Pending reports whether raw ends in four equal bytes without their
// count, by libbzip2's byte-at-a-time rule (unRLE1 gives the bytes).
func rle1Pending(raw []byte) bool {
	last, same := -1, 0
	for _, c := range raw {
		switch {
		case same == 4:
			last, same = -1, 0
		case int(c) == last:
			same++
		default:
			last, same = int(c), 1
		}
	}
	return same == 4
}

// TestRLE1 checks the bulk expansion against the byte-at-a-time rule on
// inputs full of runs of every length, at every alignment.
func TestRLE1(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 20000 {
		n := r.IntN(64)
		raw := make([]byte, 0, n)
		for len(raw) < n {
			c := byte(r.IntN(3))
			for range r.IntN(7) + 1 {
				raw = append(raw, c)
			}
			if r.IntN(4) == 0 { // a longest run's count
				raw = append(raw, 255)
			}
		}
		raw = raw[:n]
		want, wantPending := unRLE1(raw), rle1Pending(raw)
		size, big := rle1Size(raw, 0)
		if big || size != len(want) {
			t.Fatalf("%d: %x: size %d, want %d", iter, raw, size, len(want))
		}
		out := make([]byte, size)
		pending, crc := rle1Expand(raw, out)
		if pending != wantPending || !bytes.Equal(out, want) || crc != crc32(want) {
			t.Fatalf("%d: %x: got %x (pending %v), want %x (%v)", iter, raw, out, pending, want, wantPending)
		}
	}
}

// TestCRCZeros251 checks the table step against the byte-at-a-time CRC.
func TestCRCZeros251(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	zeros := make([]byte, 255)
	for range 1000 {
		s := r.Uint32()
		if got, want := crcZeros255(s), crcUpdate(s, zeros); got != want {
			t.Fatalf("state %08x: %08x, want %08x", s, got, want)
		}
	}
}
