package payload_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/augen-project/augen/payload"
)

// FuzzReader: the Reader never panics or over-allocates, and anything it
// accepts re-serializes to exactly the bytes it read.
func FuzzReader(f *testing.F) {
	f.Add(readFile(f, "../testdata/payloads/tiny-signed.bin"))
	f.Add(readFile(f, "../testdata/payloads/tiny-unsigned.bin"))
	// The generator vectors are large for a fuzzer; TestRejectsByteChangesInVectors covers them.
	f.Fuzz(func(t *testing.T, b []byte) {
		pr, err := payload.NewReader(bytes.NewReader(b), &payload.ReaderOptions{MaxManifestSize: 1 << 20, MaxBlobSize: 1 << 20})
		if err != nil {
			return
		}
		var data bytes.Buffer
		for {
			op, err := pr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
			data.Write(op.Data)
		}
		mb, err := proto.MarshalOptions{Deterministic: true}.Marshal(pr.Manifest())
		if err != nil {
			t.Fatal(err)
		}
		var re bytes.Buffer
		re.WriteString(payload.Magic)
		binary.Write(&re, binary.BigEndian, uint64(payload.Version))
		binary.Write(&re, binary.BigEndian, uint64(len(mb)))
		re.Write(mb)
		re.Write(data.Bytes())
		re.Write(pr.SignaturesBlob())
		if !bytes.Equal(re.Bytes(), b) {
			t.Fatalf("accepted payload re-serializes differently (%d vs %d bytes)", re.Len(), len(b))
		}
		if h := pr.Hashes(); h.Size != int64(len(b)) {
			t.Fatalf("hashed %d of %d bytes", h.Size, len(b))
		}
	})
}

// FuzzDecodeSignatures: whatever parses re-encodes to the same bytes.
func FuzzDecodeSignatures(f *testing.F) {
	for _, n := range []int{1, 2, 3} {
		sigs := make([][]byte, n)
		for i := range sigs {
			sigs[i] = bytes.Repeat([]byte{byte(i + 1)}, 256)
		}
		b, _ := payload.EncodeSignatures(sigs)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := payload.DecodeSignatures(b)
		if err != nil {
			return
		}
		var sigs [][]byte
		for _, s := range msg.Signatures {
			sigs = append(sigs, s.GetData())
		}
		re, err := payload.EncodeSignatures(sigs)
		if err != nil || !bytes.Equal(re, b) {
			t.Fatalf("re-encodes to %x (%v), read %x", re, err, b)
		}
	})
}
