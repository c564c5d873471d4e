// Package payload reads and writes update_engine's CrAU v1 update payloads
// exactly as Flatcar's client accepts them.
//
// doc/payload-format.md is the normative description of the format. In short:
//
//	"CrAU" | uint64 BE version (1) | uint64 BE manifest size | manifest |
//	data blobs | Signatures blob
//
// Data offsets are relative to the end of the manifest. The signed hash is the
// SHA-256 of every byte before the Signatures blob; the Omaha hashes cover the
// whole file.
//
// The Reader enforces every rule the client enforces (and a few stricter ones
// that only reject what no correct generator writes), hashing as it reads. The
// Writer assembles a payload from a manifest and its blobs and attaches
// signatures that it has checked.
package payload

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/payload/internal/pb"
)

// Types of the manifest, re-exported so that code outside payload/ can read
// a manifest without importing the generated package.
type (
	Manifest       = pb.DeltaArchiveManifest
	Operation      = pb.InstallOperation
	OperationType  = pb.InstallOperation_Type
	Extent         = pb.Extent
	InstallInfo    = pb.InstallInfo
	Procedure      = pb.InstallProcedure
	ProcedureType  = pb.InstallProcedure_Type
	SignaturesMsg  = pb.Signatures
	SignatureEntry = pb.Signatures_Signature
)

// Operation and procedure types.
const (
	OpReplace   = pb.InstallOperation_REPLACE
	OpReplaceBz = pb.InstallOperation_REPLACE_BZ
	OpMove      = pb.InstallOperation_MOVE
	OpBsdiff    = pb.InstallOperation_BSDIFF

	ProcKernel    = pb.InstallProcedure_KERNEL
	ProcPCRPolicy = pb.InstallProcedure_PCR_POLICY
)

// Format constants (doc/payload-format.md §1).
const (
	Magic      = "CrAU"
	Version    = 1
	HeaderSize = 20 // magic + version + manifest size
	BlockSize  = 4096

	// SparseHole as an extent's start_block means "consume the data, write
	// nothing" (kSparseHole in update_engine).
	SparseHole = ^uint64(0)

	// CurrentSignatureVersion is the only Signatures entry version that
	// update_engine checks. With N signatures the entries get versions
	// 3-N … 2, so the last signature is the one clients verify.
	CurrentSignatureVersion = 2
)

// Limits checked before anything is allocated. They are far above what any
// real payload needs (a production manifest is ~60 KB, a full-payload blob
// at most ~1 MiB) and far below what would exhaust memory.
const (
	MaxManifestSize   = 16 << 20
	MaxSignaturesSize = 64 << 10
	MaxSignatures     = 16
	// MaxOperations bounds the operations of one payload: a 1 GiB full
	// payload has about 1,100, and even one operation per 4 KiB block of
	// a 4 GiB partition stays under it.
	MaxOperations = 1 << 20
)

// Errors. Every error the Reader returns for a malformed payload wraps
// ErrInvalid, so callers can tell "bad payload" from "could not read".
var (
	ErrInvalid   = augen.Rejection("payload: invalid payload")
	ErrSignature = augen.Rejection("payload: signature verification failed")
)

// invalidf returns an error wrapping ErrInvalid.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// stricterf is invalidf for a rule the client does not have (a limit, a
// field it ignores, an accident of its code augen will not model): the
// error also carries augen.Stricter(rule), and doc/payload-format.md §3.4
// lists the rule.
func stricterf(rule, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %w", ErrInvalid, fmt.Sprintf(format, args...), augen.Stricter(rule))
}

// OpName is the name of an operation type as the client's logs spell it.
func OpName(t OperationType) string { return t.String() }

// Blocks returns how many blocks n bytes occupy.
func Blocks(n uint64) uint64 { return (n + BlockSize - 1) / BlockSize }

// Hashes are the digests of a whole payload file that an update service
// publishes. Keep every encoding of them here, in one place.
type Hashes struct {
	Size   int64
	SHA1   [sha1.Size]byte
	SHA256 [sha256.Size]byte
}

// OmahaSHA256 is the base64 SHA-256 of the whole file: the postinstall
// action's sha256 attribute, compared by the client as an exact string.
func (h Hashes) OmahaSHA256() string { return base64.StdEncoding.EncodeToString(h.SHA256[:]) }

// OmahaSHA1 is the base64 SHA-1: the package's hash attribute.
func (h Hashes) OmahaSHA1() string { return base64.StdEncoding.EncodeToString(h.SHA1[:]) }

// HexSHA256 is the hex SHA-256, the encoding of extra files' hash_sha256.
func (h Hashes) HexSHA256() string { return hex.EncodeToString(h.SHA256[:]) }

// fileHasher computes Hashes over everything written to it (no SHA-1
// when sha1 is nil).
type fileHasher struct {
	n    int64
	sha1 hash.Hash
	s256 hash.Hash
}

func newFileHasher() *fileHasher {
	return &fileHasher{sha1: sha1.New(), s256: sha256.New()}
}

func (h *fileHasher) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	if h.sha1 != nil {
		h.sha1.Write(p)
	}
	h.s256.Write(p)
	return len(p), nil
}

func (h *fileHasher) sum() Hashes {
	var out Hashes
	out.Size = h.n
	if h.sha1 != nil {
		h.sha1.Sum(out.SHA1[:0])
	}
	h.s256.Sum(out.SHA256[:0])
	return out
}
