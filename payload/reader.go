package payload

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ReaderOptions tune a Reader. The zero value is what verification wants.
type ReaderOptions struct {
	// MaxManifestSize bounds the manifest; 0 means MaxManifestSize.
	MaxManifestSize int64
	// MaxBlobSize bounds one operation's data; 0 means DefaultMaxBlobSize.
	MaxBlobSize int64
	// Prepared accepts a payload prepared for two-pass signing: its
	// manifest reserves the Signatures blob but the file ends before it
	// (the output of Prepare / `augen payload digest`).
	Prepared bool
	// NoSHA1 skips the whole file's SHA-1 (Omaha's second hash): for a
	// second pass over a payload whose hashes the first pass took. Hashes
	// then has a zero SHA1.
	NoSHA1 bool
}

// DefaultMaxBlobSize bounds one operation's data, which a verifier holds in
// memory while the operation is applied (doc/hostile-input.md: verification
// runs in 256 MiB). Full payloads use ~1 MiB blobs; augen's deltas send a
// kernel of more than half of this in 1 MiB pieces, and split files into
// pieces of at most 8 MiB. A delta_generator delta carries its kernel as
// one operation: one of a kernel over 64 MiB is refused (rule limits).
const DefaultMaxBlobSize = 64 << 20

// Op is one operation as the client executes it, with its data.
type Op struct {
	// Index counts operations in execution order: partition operations
	// first, then each procedure's.
	Index int
	// Procedure is the index into Manifest().Procedures, or -1 for a
	// partition operation.
	Procedure int
	*Operation
	// Data is the operation's blob, already checked against its SHA-256.
	// It is valid until the next call to Next.
	Data []byte
	// FileOffset is where Data starts in the payload file.
	FileOffset int64
}

// Where names the operation for error messages.
func (o *Op) Where() string {
	if o.Procedure < 0 {
		return fmt.Sprintf("partition operation %d", o.Index)
	}
	return fmt.Sprintf("operation %d (procedure %d)", o.Index, o.Procedure)
}

// Reader streams a payload: NewReader parses and checks the header and
// manifest, Next returns each operation with its checked data, and the final
// io.EOF comes only after the Signatures blob was read and the file was seen
// to end right after it. Errors are sticky.
type Reader struct {
	r    *bufio.Reader
	opts ReaderOptions

	manifest     *Manifest
	manifestSize int64
	ops          []opRef
	dataSize     uint64 // sum of all operations' data

	pos int64 // bytes consumed from the file
	// file hashes every byte read; the signed hash (the SHA-256 of the
	// bytes before the Signatures blob) is its SHA-256 taken before that
	// blob is read, so the payload is hashed once, not twice.
	file *fileHasher
	buf  []byte

	next       int
	err        error
	signedHash []byte
	sigBlob    []byte
	sigs       *SignaturesMsg
}

type opRef struct {
	proc int
	op   *Operation
}

// NewReader reads and checks the header and manifest. Limits are checked
// before anything is allocated.
func NewReader(r io.Reader, opts *ReaderOptions) (*Reader, error) {
	pr := &Reader{r: bufio.NewReaderSize(r, 1<<16), file: newFileHasher()}
	if opts != nil {
		pr.opts = *opts
	}
	if pr.opts.NoSHA1 {
		pr.file.sha1 = nil
	}
	if pr.opts.MaxManifestSize <= 0 {
		pr.opts.MaxManifestSize = MaxManifestSize
	}
	if pr.opts.MaxBlobSize <= 0 {
		pr.opts.MaxBlobSize = DefaultMaxBlobSize
	}
	if err := pr.readHeader(); err != nil {
		return nil, err
	}
	return pr, nil
}

// consume reads exactly n bytes and hashes them. Only the signatures blob,
// read last, is not signed (signed false); finish takes the signed hash
// before it.
func (pr *Reader) consume(n int64, signed bool, what string) ([]byte, error) {
	if signed && pr.signedHash != nil {
		return nil, fmt.Errorf("payload: %s read after the signed hash was taken", what)
	}
	if int64(cap(pr.buf)) < n {
		pr.buf = make([]byte, n)
	}
	b := pr.buf[:n]
	got, err := io.ReadFull(pr.r, b)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, invalidf("truncated: file ends at byte %d, inside %s (%d of %d bytes present)", pr.pos+int64(got), what, got, n)
		}
		return nil, fmt.Errorf("payload: reading %s at byte %d: %w", what, pr.pos, err)
	}
	pr.pos += n
	pr.file.Write(b)
	return b, nil
}

func (pr *Reader) readHeader() error {
	h, err := pr.consume(HeaderSize, true, "the 20-byte header")
	if err != nil {
		return err
	}
	if string(h[:4]) != Magic {
		return invalidf("not a CrAU payload: magic at byte 0 is %q, want %q", h[:4], Magic)
	}
	if v := binary.BigEndian.Uint64(h[4:12]); v != Version {
		// The client does not read the version (delta_metadata.cc
		// ParsePayload: "We don't check the version at all today").
		return stricterf("header-version", "format version %d at byte 4; every generator writes %d, the only version augen knows", v, Version)
	}
	ms := binary.BigEndian.Uint64(h[12:20])
	if ms == 0 || ms > uint64(pr.opts.MaxManifestSize) {
		return invalidf("manifest size %d at byte 12 is outside 1..%d", ms, pr.opts.MaxManifestSize)
	}
	pr.manifestSize = int64(ms)
	mb, err := pr.consume(int64(ms), true, "the manifest")
	if err != nil {
		return err
	}
	// The manifest gets its own buffer: nothing parsed from it may alias
	// memory that operation data reuses.
	pr.buf = nil
	if c := manifestCost(mb); c > MaxManifestMemory {
		return stricterf("limits", "the manifest declares so many operations and extents that parsing it would take %d MiB, more than augen's limit of %d MiB", c>>20, MaxManifestMemory>>20)
	}
	m := &Manifest{}
	if err := strictUnmarshal(mb, m); err != nil {
		return fmt.Errorf("%w: manifest (bytes %d..%d): %w", ErrInvalid, HeaderSize, HeaderSize+ms, err)
	}
	pr.manifest = m
	return pr.checkManifest()
}

// Manifest returns the parsed manifest. Callers must not modify it.
func (pr *Reader) Manifest() *Manifest { return pr.manifest }

// ManifestSize is the length of the serialized manifest.
func (pr *Reader) ManifestSize() int64 { return pr.manifestSize }

// MetadataSize is the header plus the manifest: where data offsets start.
func (pr *Reader) MetadataSize() int64 { return HeaderSize + pr.manifestSize }

// DataSize is the total length of all operations' data.
func (pr *Reader) DataSize() uint64 { return pr.dataSize }

// NumOps is the number of operations Next returns.
func (pr *Reader) NumOps() int { return len(pr.ops) }

// Next returns the next operation with its data checked against its hash.
// After the last operation it reads the Signatures blob (unless the payload
// is unsigned or Prepared) and returns io.EOF once the file has ended.
func (pr *Reader) Next() (*Op, error) {
	if pr.err != nil {
		return nil, pr.err
	}
	op, err := pr.nextOp()
	if err != nil {
		pr.err = err
		return nil, err
	}
	return op, nil
}

func (pr *Reader) nextOp() (*Op, error) {
	if pr.next == len(pr.ops) {
		if err := pr.finish(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
	ref := pr.ops[pr.next]
	o := &Op{Index: pr.next, Procedure: ref.proc, Operation: ref.op, FileOffset: pr.pos}
	pr.next++
	if n := ref.op.GetDataLength(); n > 0 {
		data, err := pr.consume(int64(n), true, fmt.Sprintf("the data of %s", o.Where()))
		if err != nil {
			return nil, err
		}
		if sum := sha256.Sum256(data); !bytes.Equal(sum[:], ref.op.GetDataSha256Hash()) {
			if ref.proc >= 0 && pr.manifest.Procedures[ref.proc].Type == nil {
				// The client skips an untyped procedure's operations
				// without looking at their data (PerformOperation).
				return nil, stricterf("skipped-operation-hash", "%s (a procedure of no known type, which the client skips): data at bytes %d..%d does not match its SHA-256 (manifest %x, data %x)",
					o.Where(), o.FileOffset, o.FileOffset+int64(n), ref.op.GetDataSha256Hash(), sum)
			}
			return nil, invalidf("%s: data at bytes %d..%d does not match its SHA-256 (manifest %x, data %x)",
				o.Where(), o.FileOffset, o.FileOffset+int64(n), ref.op.GetDataSha256Hash(), sum)
		}
		o.Data = data
	}
	return o, nil
}

func (pr *Reader) finish() error {
	pr.signedHash = pr.file.s256.Sum(nil) // Sum leaves the state as it was
	m := pr.manifest
	if (m.SignaturesSize != nil) && !pr.opts.Prepared {
		blob, err := pr.consume(int64(m.GetSignaturesSize()), false, "the signatures blob")
		if err != nil {
			return err
		}
		sigs, err := DecodeSignatures(blob)
		if err != nil {
			return fmt.Errorf("%w (at bytes %d..%d)", err, pr.pos-int64(len(blob)), pr.pos)
		}
		pr.sigBlob = append([]byte(nil), blob...)
		pr.sigs = sigs
	}
	if _, err := pr.r.ReadByte(); err == nil {
		return invalidf("trailing bytes after byte %d, where the payload ends", pr.pos)
	} else if err != io.EOF {
		return fmt.Errorf("payload: reading at byte %d: %w", pr.pos, err)
	}
	return nil
}

// ReadAll consumes the rest of the payload, discarding operation data, and
// returns nil once the whole file checked out.
func (pr *Reader) ReadAll() error {
	for {
		if _, err := pr.Next(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// Done reports whether the whole file has been read and checked.
func (pr *Reader) Done() bool { return pr.err == io.EOF }

// SignedHash is the SHA-256 of every byte before the Signatures blob: the
// digest each signature signs. Valid once Next returned io.EOF.
func (pr *Reader) SignedHash() []byte { return pr.signedHash }

// Signatures returns the parsed Signatures blob, or nil for an unsigned or
// prepared payload. Valid once Next returned io.EOF.
func (pr *Reader) Signatures() *SignaturesMsg { return pr.sigs }

// SignaturesBlob returns the raw Signatures blob (nil if none).
func (pr *Reader) SignaturesBlob() []byte { return pr.sigBlob }

// Hashes returns size, SHA-1 and SHA-256 of the whole file. Valid once Next
// returned io.EOF.
func (pr *Reader) Hashes() Hashes { return pr.file.sum() }
