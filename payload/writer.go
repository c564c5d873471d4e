package payload

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
)

// SignFunc signs the 32-byte signed hash of a payload and returns one raw
// signature per key, in the order the Signatures blob lists them.
type SignFunc func(digest []byte) ([][]byte, error)

// SignatureSize returns the size in bytes of a signature by this public key.
// update_engine verifies RSA PKCS#1 v1.5 only.
func SignatureSize(pub crypto.PublicKey) (int, error) {
	k, ok := pub.(*rsa.PublicKey)
	if !ok {
		return 0, fmt.Errorf("payload: %T keys cannot sign payloads: update_engine verifies RSA only", pub)
	}
	return k.Size(), nil
}

// SignWith returns a SignFunc that signs with each signer in order (RSA
// PKCS#1 v1.5 over SHA-256) and verifies every signature against the signer's
// public key before returning it.
func SignWith(signers []crypto.Signer) SignFunc {
	return func(digest []byte) ([][]byte, error) {
		sigs := make([][]byte, len(signers))
		for i, s := range signers {
			pub, ok := s.Public().(*rsa.PublicKey)
			if !ok {
				return nil, fmt.Errorf("payload: key %d is %T: update_engine verifies RSA only", i+1, s.Public())
			}
			sig, err := s.Sign(rand.Reader, digest, crypto.SHA256)
			if err != nil {
				return nil, fmt.Errorf("payload: signing with key %d: %w", i+1, err)
			}
			if err := VerifyDigest(pub, digest, sig); err != nil {
				return nil, fmt.Errorf("payload: key %d produced a signature that does not verify: %w", i+1, err)
			}
			sigs[i] = sig
		}
		return sigs, nil
	}
}

// Prepare reserves room for signatures of the given sizes in an unsigned
// manifest, the way update_engine's generator does: signatures_offset is the
// end of all operation data, signatures_size the length of the Signatures
// blob, and a noop operation covers the blob (with a sparse-hole extent and
// no hash). The signed hash depends on this, so it happens before hashing.
func Prepare(m *Manifest, sizes []int) error {
	if m.SignaturesOffset != nil || m.SignaturesSize != nil {
		return errors.New("payload: manifest already reserves a signatures blob")
	}
	n, err := SignaturesSize(sizes)
	if err != nil {
		return err
	}
	off := DataSizeOf(m)
	m.SignaturesOffset = proto.Uint64(off)
	m.SignaturesSize = proto.Uint64(uint64(n))
	if off > uint64(^uint32(0)) {
		return fmt.Errorf("payload: %d bytes of data: data offsets are 32-bit", off)
	}
	m.NoopOperations = append(m.NoopOperations, &Operation{
		Type:       OpReplace.Enum(),
		DataOffset: proto.Uint32(uint32(off)),
		DataLength: proto.Uint32(uint32(n)),
		DstExtents: []*Extent{{StartBlock: proto.Uint64(SparseHole), NumBlocks: proto.Uint64(Blocks(uint64(n)))}},
	})
	return nil
}

// DataSizeOf sums the data of every operation the client executes.
func DataSizeOf(m *Manifest) uint64 {
	var n uint64
	for _, op := range m.PartitionOperations {
		n += uint64(op.GetDataLength())
	}
	for _, p := range m.Procedures {
		for _, op := range p.Operations {
			n += uint64(op.GetDataLength())
		}
	}
	return n
}

// Result describes a written payload.
type Result struct {
	// Digest is the signed hash: SHA-256 of every byte before the
	// Signatures blob.
	Digest []byte
	// Hashes covers the whole file as written (for a prepared payload,
	// without the Signatures blob).
	Hashes Hashes
	// Signatures are the raw signatures written, in order.
	Signatures [][]byte
}

// Assemble writes header, manifest and blobs to w, then, if the manifest
// reserves a Signatures blob and sign is not nil, signs the digest and
// appends the blob. With sign nil it writes a prepared payload for two-pass
// signing. blobs must yield exactly the operations' data in order.
func Assemble(w io.Writer, m *Manifest, blobs io.Reader, sign SignFunc) (*Result, error) {
	mb, err := marshal.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("payload: encoding manifest: %w", err)
	}
	if len(mb) > MaxManifestSize {
		return nil, fmt.Errorf("payload: manifest is %d bytes, over the limit of %d", len(mb), MaxManifestSize)
	}
	signed := sha256.New()
	file := newFileHasher()
	out := io.MultiWriter(w, signed, file)
	var hdr [HeaderSize]byte
	copy(hdr[:], Magic)
	binary.BigEndian.PutUint64(hdr[4:], Version)
	binary.BigEndian.PutUint64(hdr[12:], uint64(len(mb)))
	if _, err := out.Write(hdr[:]); err != nil {
		return nil, err
	}
	if _, err := out.Write(mb); err != nil {
		return nil, err
	}
	want := int64(DataSizeOf(m))
	n, err := io.CopyN(out, blobs, want)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("payload: blobs end after %d of %d bytes", n, want)
		}
		return nil, err
	}
	res := &Result{Digest: signed.Sum(nil)}
	if m.SignaturesSize != nil && sign != nil {
		sigs, err := sign(res.Digest)
		if err != nil {
			return nil, err
		}
		blob, err := EncodeSignatures(sigs)
		if err != nil {
			return nil, err
		}
		if uint64(len(blob)) != m.GetSignaturesSize() {
			return nil, fmt.Errorf("payload: the signatures take %d bytes but the payload reserved %d (signature sizes %v differ from the ones it was prepared for)",
				len(blob), m.GetSignaturesSize(), sigSizes(sigs))
		}
		if _, err := out.Write(blob); err != nil {
			return nil, err
		}
		res.Signatures = sigs
	}
	res.Hashes = file.sum()
	return res, nil
}

func sigSizes(sigs [][]byte) []int {
	s := make([]int, len(sigs))
	for i := range sigs {
		s[i] = len(sigs[i])
	}
	return s
}

// Finish rewrites a payload that has no Signatures blob yet (unsigned, or
// prepared by an earlier Finish with sign nil) to w, checking every rule and
// blob hash on the way. An unsigned payload is first prepared for
// signatures of the given sizes; a prepared one keeps its reservation, and
// sizes, if given, must match it. With sign nil the output is the prepared
// payload and Result.Digest the hash to sign.
func Finish(w io.Writer, src io.Reader, sizes []int, sign SignFunc) (*Result, error) {
	pr, err := NewReader(src, &ReaderOptions{Prepared: true})
	if err != nil {
		return nil, err
	}
	m := proto.Clone(pr.Manifest()).(*Manifest)
	if m.SignaturesSize == nil {
		if len(sizes) == 0 {
			return nil, errors.New("payload: no signature sizes given for an unsigned payload")
		}
		if err := Prepare(m, sizes); err != nil {
			return nil, err
		}
	} else if len(sizes) > 0 {
		n, err := SignaturesSize(sizes)
		if err != nil {
			return nil, err
		}
		if uint64(n) != m.GetSignaturesSize() {
			return nil, fmt.Errorf("payload: signatures of sizes %v take %d bytes, but the payload reserved %d", sizes, n, m.GetSignaturesSize())
		}
	}
	res, err := Assemble(w, m, &opDataReader{pr: pr}, sign)
	if err != nil {
		return nil, err
	}
	// Assemble stopped where the data ends: operations without data may
	// follow, and the reader must still see the input end there.
	for {
		op, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(op.Data) > 0 {
			return nil, fmt.Errorf("payload: %s has data past the end the manifest declares", op.Where())
		}
	}
	return res, nil
}

// opDataReader presents a Reader's operation data as one stream.
type opDataReader struct {
	pr  *Reader
	cur []byte
}

func (r *opDataReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		op, err := r.pr.Next()
		if err != nil {
			return 0, err
		}
		r.cur = op.Data
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}
