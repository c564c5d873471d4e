package payload_test

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/payload"
)

func TestVectorsAccepted(t *testing.T) {
	a, b := testPub(t, "a"), testPub(t, "b")
	for _, name := range []string{"full-signed.bin", "full-nokernel-signed.bin", "full-2sig-signed.bin", "delta-signed.bin"} {
		t.Run(name, func(t *testing.T) {
			s, err := verifyBytes(readFile(t, vectors+name), a, b)
			if err != nil {
				t.Fatal(err)
			}
			if s.Omaha.Size != int64(len(readFile(t, vectors+name))) {
				t.Errorf("omaha size %d", s.Omaha.Size)
			}
		})
	}
}

// The signed hash is exactly what delta_generator --out_hash_file wrote.
func TestSignedHashMatchesGenerator(t *testing.T) {
	pr, err := payload.NewReader(bytes.NewReader(readFile(t, vectors+"full-2sig-signed.bin")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.ReadAll(); err != nil {
		t.Fatal(err)
	}
	if want := readFile(t, vectors+"full-2sig.hash"); !bytes.Equal(pr.SignedHash(), want) {
		t.Fatalf("signed hash %x, want %x", pr.SignedHash(), want)
	}
	s, _ := payload.Summarize(pr, []crypto.PublicKey{testPub(t, "a"), testPub(t, "b")})
	if len(s.Signatures) != 2 || s.Signatures[0].Version != 1 || s.Signatures[1].Version != 2 || !s.Signatures[1].CheckedByClient {
		t.Fatalf("signatures %+v", s.Signatures)
	}
}

// mutate flips one byte at i.
func mutate(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

// mustReject checks that a variant fails with an error that says what is
// wrong and where.
func mustReject(t *testing.T, what string, b []byte, pubs ...crypto.PublicKey) {
	t.Helper()
	_, err := verifyBytes(b, pubs...)
	if err == nil {
		t.Fatalf("%s: accepted", what)
	}
	if !errors.Is(err, payload.ErrInvalid) && !errors.Is(err, payload.ErrSignature) {
		t.Fatalf("%s: error %v is neither ErrInvalid nor ErrSignature", what, err)
	}
}

func TestRejectsEveryByteChangeTiny(t *testing.T) {
	a := testKey(t, "a")
	b := tinyPayload(t, a)
	if _, err := verifyBytes(b, a.Public()); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		mustReject(t, fmt.Sprintf("byte %d changed", i), mutate(b, i), a.Public())
	}
}

func TestRejectsEveryTruncationAndTrailingByte(t *testing.T) {
	a := testKey(t, "a")
	b := tinyPayload(t, a)
	for n := 0; n < len(b); n++ {
		mustReject(t, fmt.Sprintf("truncated to %d", n), b[:n], a.Public())
	}
	mustReject(t, "trailing byte", append(bytes.Clone(b), 0), a.Public())
	_, err := verifyBytes(append(bytes.Clone(b), 0), a.Public())
	if !strings.Contains(err.Error(), "trailing bytes after byte") {
		t.Errorf("trailing byte: %v", err)
	}
	_, err = verifyBytes(b[:len(b)-10], a.Public())
	if !strings.Contains(err.Error(), "truncated") || !strings.Contains(err.Error(), "signatures blob") {
		t.Errorf("truncated: %v", err)
	}
}

// The real generator's payloads: every byte of the header, manifest and
// signatures (every 7th with -short), each blob's first and last byte, a
// sample of the other blob bytes, and a sample of truncations.
func TestRejectsByteChangesInVectors(t *testing.T) {
	pubs := []crypto.PublicKey{testPub(t, "a"), testPub(t, "b")}
	step := 1
	if testing.Short() {
		step = 7
	}
	if testutil.Race {
		step = 61 // the reader has no concurrency: the full suite flips every byte
	}
	for _, name := range []string{"full-signed.bin", "full-2sig-signed.bin", "delta-signed.bin", "full-nokernel-signed.bin"} {
		t.Run(name, func(t *testing.T) {
			b := readFile(t, vectors+name)
			pr, err := payload.NewReader(bytes.NewReader(b), nil)
			if err != nil {
				t.Fatal(err)
			}
			meta := int(pr.MetadataSize())
			dataEnd := meta + int(pr.DataSize())
			var idx []int
			for i := 0; i < meta; i += step {
				idx = append(idx, i)
			}
			for i := dataEnd; i < len(b); i += step {
				idx = append(idx, i)
			}
			for i := meta; i < dataEnd; i += 16381 {
				idx = append(idx, i)
			}
			for _, op := range allOps(pr.Manifest()) {
				if n := int(op.GetDataLength()); n > 0 {
					idx = append(idx, meta+int(op.GetDataOffset()), meta+int(op.GetDataOffset())+n-1)
				}
			}
			for _, i := range idx {
				mustReject(t, fmt.Sprintf("byte %d changed", i), mutate(b, i), pubs...)
			}
			for n := 0; n < len(b); n += 49999 {
				mustReject(t, fmt.Sprintf("truncated to %d", n), b[:n], pubs...)
			}
			mustReject(t, "last byte cut", b[:len(b)-1], pubs...)
			mustReject(t, "trailing byte", append(bytes.Clone(b), 0), pubs...)
		})
	}
}

func allOps(m *payload.Manifest) []*payload.Operation {
	ops := append([]*payload.Operation(nil), m.PartitionOperations...)
	for _, p := range m.Procedures {
		ops = append(ops, p.Operations...)
	}
	return ops
}

// rebuild re-assembles an unsigned payload after edit changed its manifest.
func rebuild(t *testing.T, b []byte, edit func(m *payload.Manifest)) []byte {
	t.Helper()
	pr, err := payload.NewReader(bytes.NewReader(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := proto.Clone(pr.Manifest()).(*payload.Manifest)
	data := b[pr.MetadataSize() : pr.MetadataSize()+int64(pr.DataSize())]
	edit(m)
	mb, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return assembleRaw(mb, data)
}

func assembleRaw(manifest, data []byte) []byte {
	var out bytes.Buffer
	out.WriteString(payload.Magic)
	binary.Write(&out, binary.BigEndian, uint64(1))
	binary.Write(&out, binary.BigEndian, uint64(len(manifest)))
	out.Write(manifest)
	out.Write(data)
	return out.Bytes()
}

func TestManifestRules(t *testing.T) {
	base := tinyPayload(t)
	if _, err := verifyBytesUnsigned(base); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(m *payload.Manifest)
		want string
	}{
		{"missing hash", func(m *payload.Manifest) { m.PartitionOperations[0].DataSha256Hash = nil }, "no 32-byte data_sha256_hash"},
		{"gap in data", func(m *payload.Manifest) { m.PartitionOperations[0].DataOffset = proto.Uint32(1) }, "data_offset 1"},
		{"block size", func(m *payload.Manifest) { m.BlockSize = proto.Uint32(512) }, "block_size 512"},
		{"no new info", func(m *payload.Manifest) { m.NewPartitionInfo = nil }, "new_partition_info is missing"},
		{"kernel without new_info", func(m *payload.Manifest) { m.Procedures[0].NewInfo = nil }, "has no new_info"},
		{"move with data", func(m *payload.Manifest) { m.PartitionOperations[0].Type = payload.OpMove.Enum() }, "MOVE must not carry data"},
		{"signature offset", func(m *payload.Manifest) {
			m.SignaturesOffset, m.SignaturesSize = proto.Uint64(5), proto.Uint64(264)
		}, "signatures_offset 5"},
		{"only sig size", func(m *payload.Manifest) { m.SignaturesSize = proto.Uint64(264) }, "must be set together"},
		{"no extents", func(m *payload.Manifest) { m.PartitionOperations[0].DstExtents = nil }, "no destination extents"},
		{"temp block", func(m *payload.Manifest) {
			m.PartitionOperations[0].DstExtents[0].StartBlock = proto.Uint64(1 << 60)
		}, "scratch block"},
		{"noop writes", func(m *payload.Manifest) {
			m.NoopOperations[0].DstExtents[0].StartBlock = proto.Uint64(3)
		}, "may only name sparse holes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifyBytesUnsigned(rebuild(t, base, tc.edit))
			if err == nil || !errors.Is(err, payload.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func verifyBytesUnsigned(b []byte) (*payload.Summary, error) {
	pr, err := payload.NewReader(bytes.NewReader(b), nil)
	if err != nil {
		return nil, err
	}
	if err := pr.ReadAll(); err != nil {
		return nil, err
	}
	return payload.Summarize(pr, nil)
}

// Wire-level changes that a Go struct cannot express.
func TestManifestEncodingRules(t *testing.T) {
	base := tinyPayload(t)
	pr, _ := payload.NewReader(bytes.NewReader(base), nil)
	mb := base[payload.HeaderSize:pr.MetadataSize()]
	data := base[pr.MetadataSize():]
	for _, tc := range []struct {
		name     string
		manifest []byte
		want     string
	}{
		// Field 11 does not exist in Flatcar's schema.
		{"unknown field", append(bytes.Clone(mb), 0x58, 0x01), "unknown field number 11"},
		// Field 3 (block_size) repeated at the end: Go keeps the last,
		// but the bytes are not what a generator writes.
		{"repeated optional", append(bytes.Clone(mb), 0x18, 0x80, 0x20), "not canonically encoded"},
		// An operation of type 7 appended as a new partition operation.
		{"unknown op type", append(bytes.Clone(mb), 0x0a, 0x02, 0x08, 0x07), "unknown Type value 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifyBytesUnsigned(assembleRaw(tc.manifest, data))
			if err == nil || !errors.Is(err, payload.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// failingReader fails any read past the header: a huge manifest size must
// be refused before anything is allocated or read.
type failingReader struct{ r io.Reader }

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n == 0 && err == io.EOF {
		return 0, errors.New("read past the header")
	}
	return n, err
}

func TestHeaderRules(t *testing.T) {
	hdr := func(magic string, ver, size uint64) []byte {
		var b bytes.Buffer
		b.WriteString(magic)
		binary.Write(&b, binary.BigEndian, ver)
		binary.Write(&b, binary.BigEndian, size)
		return b.Bytes()
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"magic", hdr("CrAX", 1, 10), "not a CrAU payload"},
		{"version 2", hdr("CrAU", 2, 10), "format version 2 at byte 4"},
		{"version 0", hdr("CrAU", 0, 10), "stricter than the client (header-version)"},
		{"huge manifest", hdr("CrAU", 1, 1<<40), "manifest size 1099511627776"},
		{"empty manifest", hdr("CrAU", 1, 0), "manifest size 0"},
		{"short", []byte("CrA"), "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r io.Reader = bytes.NewReader(tc.in)
			if len(tc.in) >= payload.HeaderSize {
				r = &failingReader{r}
			}
			_, err := payload.NewReader(r, nil)
			if err == nil || !errors.Is(err, payload.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestSignatureRules(t *testing.T) {
	a, b := testKey(t, "a"), testKey(t, "b")
	p := tinyPayload(t, b, a)
	if _, err := verifyBytes(p, a.Public(), b.Public()); err != nil {
		t.Fatal(err)
	}
	// Only key A given: the version 1 signature (key B) cannot be checked.
	if _, err := verifyBytes(p, a.Public()); err == nil || !strings.Contains(err.Error(), "signature 0 (version 1, made by a 2048-bit RSA key) does not verify with the given public key ") {
		t.Fatalf("got %v", err)
	}
	// Only key B given: the signature clients check does not verify.
	if _, err := verifyBytes(p, b.Public()); err == nil || !strings.Contains(err.Error(), "the one update_engine checks") {
		t.Fatalf("got %v", err)
	}
	// An unsigned payload is not accepted as signed.
	if _, err := verifyBytes(tinyPayload(t), a.Public()); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("got %v", err)
	}
}

// Three keys work (versions 0, 1, 2; the old kit's two-pass script broke
// there), and only the last is the one clients check.
func TestThreeSignatures(t *testing.T) {
	a, b := testKey(t, "a"), testKey(t, "b")
	p := tinyPayload(t, a, b, a)
	s, err := verifyBytes(p, a.Public(), b.Public())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Signatures) != 3 || s.Signatures[0].Version != 0 || !s.Signatures[2].CheckedByClient {
		t.Fatalf("%+v", s.Signatures)
	}
}

func TestSignatureVersions(t *testing.T) {
	for n, want := range map[int]string{1: "[2]", 2: "[1 2]", 3: "[0 1 2]"} {
		if got := fmt.Sprint(payload.SignatureVersions(n)); got != want {
			t.Errorf("%d: %s, want %s", n, got, want)
		}
	}
	if n, _ := payload.SignaturesSize([]int{256}); n != 264 {
		t.Errorf("one RSA-2048 signature takes %d bytes, want 264", n)
	}
	if _, err := payload.SignaturesSize([]int{256, 256, 256, 256}); err == nil {
		t.Error("four signatures accepted")
	}
}
