package bsdiff

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"

	"github.com/augen-project/augen/internal/pbzip2"
)

func bz(b []byte) []byte {
	return pbzip2.Compress(b, pbzip2.Stream)
}

// Finding 3: a control stream of zero triples (add 0, copy 0, seek 0)
// compresses to almost nothing; a 2 KB patch of them kept the applier
// busy ~20 s. At most one triple per output byte (plus one) is read.
func TestIdleTriplesBounded(t *testing.T) {
	ctrl := bz(make([]byte, 24<<20)) // a million idle triples
	diff, extra := bz(nil), bz(nil)
	var p bytes.Buffer
	hdr := make([]byte, 32)
	copy(hdr, Magic)
	binary.LittleEndian.PutUint64(hdr[8:], uint64(len(ctrl)))
	binary.LittleEndian.PutUint64(hdr[16:], uint64(len(diff)))
	binary.LittleEndian.PutUint64(hdr[24:], 4096)
	p.Write(hdr)
	p.Write(ctrl)
	p.Write(diff)
	p.Write(extra)
	if p.Len() > 4096 {
		t.Fatalf("patch is %d bytes", p.Len())
	}
	triples, err := apply(memOld(make([]byte, 4096)), p.Bytes(), 4096, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "stricter than the client") {
		t.Fatalf("got %v", err)
	}
	if triples > 3 {
		t.Fatalf("read %d triples before stopping", triples)
	}
}
