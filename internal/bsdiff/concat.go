package bsdiff

import (
	"bytes"
	"math"

	"github.com/augen-project/augen/internal/pbzip2"
)

// Part is one piece of a patch made by Concat: Patch (BSDIFF40) applied to
// the next OldLen bytes of old data, or, with Patch nil, those OldLen
// bytes copied unchanged.
type Part struct {
	Patch  []byte
	OldLen int64
}

// Concat returns one BSDIFF40 patch that turns the concatenation of the
// parts' old data into the concatenation of their outputs, without diffing
// anything again: each part's control triples in turn, with a seek to
// where its old data starts. The delta planner uses it to merge a cycle of
// operations into one; it costs a bzip2 pass over the parts' diff bytes.
// The parts' patches must read only their own old data (Diff's do).
func Concat(parts []Part) ([]byte, error) {
	var ctrl, diff, extra bytes.Buffer
	var oldPos, base, newSize int64
	triple := func(add, copyLen, seek int64) {
		writeOff(&ctrl, add)
		writeOff(&ctrl, copyLen)
		writeOff(&ctrl, seek)
	}
	for _, p := range parts {
		if oldPos != base {
			triple(0, 0, base-oldPos)
			oldPos = base
		}
		if p.Patch == nil {
			triple(p.OldLen, 0, 0)
			diff.Write(make([]byte, p.OldLen))
			oldPos += p.OldLen
			newSize += p.OldLen
		} else {
			n, err := NewSize(p.Patch)
			if err != nil {
				return nil, err
			}
			c, d, e, err := streams(p.Patch, n)
			if err != nil {
				return nil, err
			}
			if len(c)%24 != 0 {
				return nil, corrupt("control block of %d bytes", len(c))
			}
			for i := 0; i < len(c); i += 24 {
				oldPos += offtin(c[i:]) + offtin(c[i+16:])
			}
			ctrl.Write(c)
			diff.Write(d)
			extra.Write(e)
			newSize += n
		}
		base += p.OldLen
	}
	var blocks [3][]byte
	for i, b := range []*bytes.Buffer{&ctrl, &diff, &extra} {
		var err error
		if blocks[i], err = compress(b.Bytes()); err != nil {
			return nil, err
		}
	}
	cb, db, eb := blocks[0], blocks[1], blocks[2]
	var out bytes.Buffer
	out.WriteString(Magic)
	writeOff(&out, int64(len(cb)))
	writeOff(&out, int64(len(db)))
	writeOff(&out, newSize)
	out.Write(cb)
	out.Write(db)
	out.Write(eb)
	return out.Bytes(), nil
}

// streams decompresses a patch's three blocks; none can hold more than
// the output's size (the control block: 24 bytes per output byte, plus
// one triple).
func streams(patch []byte, newSize int64) (ctrl, diff, extra []byte, err error) {
	ctrlLen, diffLen := offtin(patch[8:16]), offtin(patch[16:24])
	if ctrlLen < 0 || diffLen < 0 || ctrlLen > int64(len(patch))-32 || diffLen > int64(len(patch))-32-ctrlLen {
		return nil, nil, nil, corrupt("block lengths %d and %d do not fit the %d-byte patch", ctrlLen, diffLen, len(patch))
	}
	body := patch[32:]
	read := func(b []byte, limit int64) ([]byte, error) {
		// The project's decoder, bounded by what the output allows.
		out, err := pbzip2.DecodeOne(b, int(min(limit, math.MaxInt32)))
		if err != nil {
			return nil, corrupt("%v", err)
		}
		return out, nil
	}
	if ctrl, err = read(body[:ctrlLen], 24*(newSize+1)); err != nil {
		return
	}
	if diff, err = read(body[ctrlLen:ctrlLen+diffLen], newSize); err != nil {
		return
	}
	extra, err = read(body[ctrlLen+diffLen:], newSize)
	return
}
