// Package authenticode checks the Secure Boot signature of a kernel: the
// Authenticode signature sbsign (and Flatcar's sbsign_util.sh, through an
// HSM) appends to a PE image. It computes the image digest as the
// Authenticode specification defines it (the headers without the checksum
// and the certificate-table entry, the sections in file order, the data
// after them, never the certificate table), reads the PKCS#7 SignedData in
// the WIN_CERTIFICATE, checks that the SpcIndirectDataContent names that
// digest, verifies the signer's signature, and chains the signer's
// certificate to one the caller trusts (a leaf or a CA), as shim and the
// firmware's db check do. Sizes and offsets are checked against the file
// before anything is read or hashed.
package authenticode

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/augen-project/augen/internal/pkcs7"
)

// MaxImage bounds the PE image this package reads (a kernel is tens of MiB).
const MaxImage = 512 << 20

// ErrUnsigned means the image carries no Authenticode signature.
var ErrUnsigned = errors.New("authenticode: the kernel is not signed for Secure Boot (no certificate table)")

// ErrNotPE means the file is not a PE image (an EFI-stub kernel is one).
var ErrNotPE = errors.New("authenticode: not a PE image (a kernel with an EFI stub is one)")

// ErrInvalid wraps every error about a malformed image or signature.
var ErrInvalid = errors.New("authenticode: invalid signature")

// ErrUntrusted means the signature verifies but its signer does not chain
// to a trusted certificate.
var ErrUntrusted = errors.New("authenticode: signed by a certificate that is not trusted")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

var oidSpcIndirectData = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}

// Signature is a kernel's verified Secure Boot signature.
type Signature struct {
	// Signer is the certificate that signed; Subject its subject and
	// Fingerprint the SHA-256 of its DER (hex).
	Signer      *x509.Certificate `json:"-"`
	Subject     string            `json:"subject"`
	Fingerprint string            `json:"fingerprint"`
	// ImageDigest is the Authenticode digest of the image (hex).
	ImageDigest string `json:"image_digest"`
	// TrustedBy is the fingerprint of the trusted certificate the signer
	// chains to ("" when no trusted certificates were given).
	TrustedBy string `json:"trusted_by,omitempty"`
}

// Fingerprint is the SHA-256 of a certificate's DER, in hex.
func Fingerprint(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

type pe struct {
	checksumOff int64 // the CheckSum field
	certDirOff  int64 // the certificate-table data directory entry
	headers     int64 // SizeOfHeaders
	sections    [][2]int64
	certOff     int64 // the certificate table (0: none)
	certSize    int64
}

func parsePE(r io.ReaderAt, size int64) (*pe, error) {
	if size > MaxImage {
		return nil, invalidf("%d bytes, more than %d", size, MaxImage)
	}
	head := make([]byte, min(size, 4096))
	if _, err := r.ReadAt(head, 0); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if len(head) < 64 || string(head[:2]) != "MZ" {
		return nil, ErrNotPE
	}
	peOff := int64(le.Uint32(head[0x3c:]))
	if peOff+24 > int64(len(head)) || string(head[peOff:peOff+4]) != "PE\x00\x00" {
		return nil, ErrNotPE
	}
	nSections := int64(le.Uint16(head[peOff+6:]))
	optSize := int64(le.Uint16(head[peOff+20:]))
	opt := peOff + 24
	if opt+optSize > int64(len(head)) || optSize < 2 {
		return nil, invalidf("optional header past the first 4 KiB")
	}
	p := &pe{checksumOff: opt + 64}
	var nDirs, dirs int64
	switch le.Uint16(head[opt:]) {
	case 0x10b: // PE32
		if optSize < 96 {
			return nil, invalidf("PE32 optional header of %d bytes", optSize)
		}
		nDirs, dirs = int64(le.Uint32(head[opt+92:])), opt+96
	case 0x20b: // PE32+
		if optSize < 112 {
			return nil, invalidf("PE32+ optional header of %d bytes", optSize)
		}
		nDirs, dirs = int64(le.Uint32(head[opt+108:])), opt+112
	default:
		return nil, invalidf("optional header magic %#x", le.Uint16(head[opt:]))
	}
	if nDirs < 5 || dirs+5*8 > opt+optSize {
		return nil, invalidf("no certificate-table entry (%d data directories)", nDirs)
	}
	p.headers = int64(le.Uint32(head[opt+60:]))
	p.certDirOff = dirs + 4*8
	p.certOff, p.certSize = int64(le.Uint32(head[p.certDirOff:])), int64(le.Uint32(head[p.certDirOff+4:]))
	if p.headers < p.certDirOff+8 || p.headers > size {
		return nil, invalidf("SizeOfHeaders %d", p.headers)
	}
	secTable := opt + optSize
	if secTable+nSections*40 > int64(len(head)) || nSections > 96 {
		return nil, invalidf("%d sections past the first 4 KiB", nSections)
	}
	for i := int64(0); i < nSections; i++ {
		s := head[secTable+i*40:]
		raw, ptr := int64(le.Uint32(s[16:])), int64(le.Uint32(s[20:]))
		if raw == 0 {
			continue
		}
		if ptr > size || raw > size-ptr {
			return nil, invalidf("section %d (%d bytes at %d) is past the image's end", i, raw, ptr)
		}
		p.sections = append(p.sections, [2]int64{ptr, raw})
	}
	sort.Slice(p.sections, func(i, j int) bool { return p.sections[i][0] < p.sections[j][0] })
	// Sections that overlap would have the same bytes hashed again, up to
	// 96 times the file: refused (stricter than the firmware, which hashes
	// them as given; no linker writes them).
	end := p.headers
	for _, sec := range p.sections {
		if sec[0] < end {
			return nil, invalidf("section at %d overlaps the headers or the section before it (ending at %d)", sec[0], end)
		}
		end = sec[0] + sec[1]
	}
	if p.certSize != 0 && (p.certOff > size || p.certSize > size-p.certOff || p.certOff < p.headers) {
		return nil, invalidf("certificate table (%d bytes at %d) is past the image's end", p.certSize, p.certOff)
	}
	return p, nil
}

// digest hashes the image as Authenticode defines it.
func (p *pe) digest(r io.ReaderAt, size int64) ([]byte, error) {
	h := sha256.New()
	add := func(off, end int64) error {
		if end < off {
			return invalidf("overlapping regions at %d", off)
		}
		_, err := io.Copy(h, io.NewSectionReader(r, off, end-off))
		return err
	}
	if err := add(0, p.checksumOff); err != nil {
		return nil, err
	}
	if err := add(p.checksumOff+4, p.certDirOff); err != nil {
		return nil, err
	}
	if err := add(p.certDirOff+8, p.headers); err != nil {
		return nil, err
	}
	hashed := p.headers
	for _, s := range p.sections {
		if err := add(s[0], s[0]+s[1]); err != nil {
			return nil, err
		}
		hashed += s[1]
	}
	end := size - p.certSize
	if hashed < end {
		if err := add(hashed, end); err != nil {
			return nil, err
		}
	}
	return h.Sum(nil), nil
}

// ImageDigest computes the Authenticode SHA-256 digest of a PE image.
func ImageDigest(r io.ReaderAt, size int64) ([]byte, error) {
	p, err := parsePE(r, size)
	if err != nil {
		return nil, err
	}
	return p.digest(r, size)
}

type spcIndirectData struct {
	Data          asn1.RawValue
	MessageDigest digestInfo
}

type digestInfo struct {
	Algorithm struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue `asn1:"optional"`
	}
	Digest []byte
}

// Verify checks the image's Authenticode signature and chains its signer
// to one of trusted (leaf or CA certificates; none: the signature is
// checked and its signer named, but not trusted). A kernel with no
// signature gives ErrUnsigned; one that is not a PE image ErrNotPE.
func Verify(r io.ReaderAt, size int64, trusted []*x509.Certificate) (*Signature, error) {
	p, err := parsePE(r, size)
	if err != nil {
		return nil, err
	}
	if p.certSize == 0 {
		return nil, ErrUnsigned
	}
	if p.certSize > pkcs7.MaxSize+8 {
		return nil, invalidf("certificate table of %d bytes", p.certSize)
	}
	table := make([]byte, p.certSize)
	if _, err := r.ReadAt(table, p.certOff); err != nil {
		return nil, err
	}
	// The first WIN_CERTIFICATE is the one shim and the firmware check.
	le := binary.LittleEndian
	if len(table) < 8 {
		return nil, invalidf("certificate table of %d bytes", len(table))
	}
	length, rev, typ := int64(le.Uint32(table)), le.Uint16(table[4:]), le.Uint16(table[6:])
	if length < 8 || length > int64(len(table)) || rev != 0x0200 || typ != 0x0002 {
		return nil, invalidf("WIN_CERTIFICATE of length %d, revision %#x, type %#x (want a PKCS#7 SignedData, revision 2.0)", length, rev, typ)
	}
	der := table[8:length]
	// sbsign pads the entry to 8 bytes after the DER; the DER's own
	// length says where it ends.
	var raw asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &raw); err != nil {
		return nil, invalidf("PKCS#7: %v", err)
	} else if len(bytes.Trim(rest, "\x00")) > 0 {
		return nil, invalidf("%d bytes after the PKCS#7 signature", len(rest))
	}
	msg, err := pkcs7.Parse(raw.FullBytes)
	if err != nil {
		return nil, err
	}
	if !msg.ContentType.Equal(oidSpcIndirectData) || msg.ContentDER == nil {
		return nil, invalidf("the signed content is %v, not an Authenticode SpcIndirectDataContent", msg.ContentType)
	}
	var spc spcIndirectData
	if rest, err := asn1.Unmarshal(msg.ContentDER, &spc); err != nil || len(rest) > 0 {
		return nil, invalidf("SpcIndirectDataContent: %v", err)
	}
	if !spc.MessageDigest.Algorithm.Algorithm.Equal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}) {
		return nil, invalidf("image digest algorithm %v (augen checks SHA-256)", spc.MessageDigest.Algorithm.Algorithm)
	}
	digest, err := p.digest(r, size)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(digest, spc.MessageDigest.Digest) {
		return nil, fmt.Errorf("%w: the signature is for an image with digest %x, this kernel's is %x: the kernel changed after it was signed", ErrInvalid, spc.MessageDigest.Digest, digest)
	}
	signer := msg.SignerCertificate()
	if signer == nil {
		return nil, invalidf("the signature carries no certificate for its signer")
	}
	if err := msg.Verify(signer, msg.Content); err != nil {
		return nil, err
	}
	sig := &Signature{Signer: signer, Subject: signer.Subject.String(), Fingerprint: Fingerprint(signer), ImageDigest: hex.EncodeToString(digest)}
	if len(trusted) == 0 {
		return sig, nil
	}
	by, err := chain(signer, msg.Certificates, trusted)
	if err != nil {
		return sig, err
	}
	sig.TrustedBy = Fingerprint(by)
	return sig, nil
}

// Check is the Secure Boot rule of a release: with trusted certificates
// (or require) the kernel must be signed, by one of them or a key they
// certify; without, a signed kernel's signature is still verified and its
// signer named, and an unsigned kernel (or one that is no PE image: test
// kernels) gives nil, nil. A signature that is there but broken is always
// an error. Unsigned kernels that must be signed give an error wrapping
// ErrUnsigned or ErrNotPE.
func Check(r io.ReaderAt, size int64, trusted []*x509.Certificate, require bool) (*Signature, error) {
	sig, err := Verify(r, size, trusted)
	if (errors.Is(err, ErrUnsigned) || errors.Is(err, ErrNotPE)) && len(trusted) == 0 && !require {
		return nil, nil
	}
	return sig, err
}

// chain finds the trusted certificate signer chains to: signer itself, or
// a CA that signed it (directly or through the message's intermediates).
// Validity periods are not checked, as the firmware does not check them
// (no trusted clock at boot).
func chain(signer *x509.Certificate, intermediates, trusted []*x509.Certificate) (*x509.Certificate, error) {
	cur := signer
	for depth := 0; depth < 8; depth++ {
		for _, t := range trusted {
			if bytes.Equal(t.Raw, cur.Raw) {
				return t, nil
			}
		}
		for _, t := range trusted {
			if bytes.Equal(cur.RawIssuer, t.RawSubject) && cur.CheckSignatureFrom(t) == nil {
				return t, nil
			}
		}
		var next *x509.Certificate
		for _, c := range intermediates {
			if c != cur && bytes.Equal(cur.RawIssuer, c.RawSubject) && cur.CheckSignatureFrom(c) == nil {
				next = c
				break
			}
		}
		if next == nil {
			break
		}
		cur = next
	}
	return nil, fmt.Errorf("%w: %s (SHA-256 %s) does not chain to any of the %d given Secure Boot certificates", ErrUntrusted, signer.Subject, Fingerprint(signer), len(trusted))
}
