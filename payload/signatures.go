package payload

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// marshal is the one encoding the project writes: fields in number order,
// which is what the client's C++ protobuf writes too, so a manifest
// round-trips byte for byte.
var marshal = proto.MarshalOptions{Deterministic: true}

// SignatureVersions returns the version numbers of n Signatures entries:
// [2] for one, [1 2] for two, [0 1 2] for three (doc/payload-format.md §4).
// Only the entry with version 2, the last, is checked by update_engine.
func SignatureVersions(n int) []uint32 {
	v := make([]uint32, n)
	for i := range v {
		v[i] = uint32(CurrentSignatureVersion + 1 - n + i)
	}
	return v
}

// EncodeSignatures serializes raw signatures, in order, into the Signatures
// blob that ends a payload.
func EncodeSignatures(sigs [][]byte) ([]byte, error) {
	if len(sigs) == 0 || len(sigs) > MaxSignatures {
		return nil, fmt.Errorf("payload: %d signatures: between 1 and %d are supported", len(sigs), MaxSignatures)
	}
	if len(sigs) > CurrentSignatureVersion+1 {
		// Versions are unsigned: a fourth signature would need version -1.
		return nil, fmt.Errorf("payload: %d signatures: update_engine's version numbering allows at most %d", len(sigs), CurrentSignatureVersion+1)
	}
	msg := &SignaturesMsg{}
	for i, v := range SignatureVersions(len(sigs)) {
		msg.Signatures = append(msg.Signatures, &SignatureEntry{Version: proto.Uint32(v), Data: sigs[i]})
	}
	return marshal.Marshal(msg)
}

// SignaturesSize is the length of the Signatures blob for signatures of the
// given sizes in bytes. It is what gets reserved in the manifest before the
// payload is hashed.
func SignaturesSize(sizes []int) (int, error) {
	sigs := make([][]byte, len(sizes))
	for i, n := range sizes {
		if n <= 0 || n > 1024 {
			return 0, fmt.Errorf("payload: signature size %d bytes is out of range (1..1024)", n)
		}
		sigs[i] = make([]byte, n)
	}
	b, err := EncodeSignatures(sigs)
	return len(b), err
}

// DecodeSignatures parses a Signatures blob strictly: canonical encoding, no
// unknown fields, every entry with a version and data.
func DecodeSignatures(b []byte) (*SignaturesMsg, error) {
	if len(b) > MaxSignaturesSize {
		return nil, invalidf("signatures blob is %d bytes, more than the limit of %d", len(b), MaxSignaturesSize)
	}
	msg := &SignaturesMsg{}
	if err := strictUnmarshal(b, msg); err != nil {
		return nil, invalidf("signatures blob: %v", err)
	}
	if len(msg.Signatures) == 0 {
		return nil, invalidf("signatures blob holds no signature")
	}
	if len(msg.Signatures) > MaxSignatures {
		return nil, invalidf("signatures blob holds %d signatures, more than %d", len(msg.Signatures), MaxSignatures)
	}
	if len(msg.Signatures) > CurrentSignatureVersion+1 {
		return nil, invalidf("signatures blob holds %d signatures; version numbering allows %d", len(msg.Signatures), CurrentSignatureVersion+1)
	}
	// Versions are slots, numbered 3-N … 2 by every generator. Anything
	// else means the blob was altered (it is outside the signed region).
	want := SignatureVersions(len(msg.Signatures))
	// The client takes the first entry with version 2 and ignores the rest
	// (payload_signer.cc VerifySignatureBlob), so these are augen's rules.
	for i, s := range msg.Signatures {
		if s.Version == nil || len(s.GetData()) == 0 {
			return nil, stricterf("signature-versions", "signature %d has no version or no data", i)
		}
		if s.GetVersion() != want[i] {
			return nil, stricterf("signature-versions", "signature %d has version %d; with %d signatures the versions are %v", i, s.GetVersion(), len(want), want)
		}
	}
	return msg, nil
}

// VerifyDigest checks a PKCS#1 v1.5 SHA-256 signature of a 32-byte digest,
// the scheme update_engine uses.
func VerifyDigest(pub *rsa.PublicKey, digest, sig []byte) error {
	if len(digest) != sha256.Size {
		return fmt.Errorf("payload: digest is %d bytes, want %d", len(digest), sha256.Size)
	}
	if len(sig) != pub.Size() {
		return fmt.Errorf("%w: signature is %d bytes, the key's size is %d", ErrSignature, len(sig), pub.Size())
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig); err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	return nil
}
