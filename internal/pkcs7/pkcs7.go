// Package pkcs7 verifies the two PKCS#7 SignedData messages a Flatcar
// release carries: the dm-verity root-hash signature of a sysext
// (systemd-repart: detached, no attributes, over the root hash in hex) and
// the Authenticode signature of a Secure Boot kernel (sbsign: the content
// is an SpcIndirectDataContent, with authenticated attributes). It parses
// the SignedData subset these use, refusing the rest: one signer, an
// issuer-and-serial signer id, SHA-256/384/512 with RSA (PKCS#1 v1.5) or
// ECDSA. SHA-1 is refused (stricter than the kernel's PKCS#7 code, which
// still takes it; no Flatcar signer uses it).
package pkcs7

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
)

// MaxSize bounds a message before it is parsed: real signatures, with a
// certificate or two, take a few KiB.
const MaxSize = 1 << 20

// ErrInvalid wraps every error about a malformed or unsupported message.
var ErrInvalid = errors.New("pkcs7: invalid signature")

// ErrVerify means the message is well formed but does not verify.
var ErrVerify = errors.New("pkcs7: signature does not verify")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Object identifiers.
var (
	OIDSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	OIDData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidRSA           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	oidSHA256RSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384RSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512RSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidECDSA256      = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSA384      = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSA512      = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidECPublicKey   = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
)

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

type signedData struct {
	Version          int
	DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
	Encap            contentInfo
	Certificates     asn1.RawValue `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      []signerInfo  `asn1:"set"`
}

type issuerAndSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

type signerInfo struct {
	Version            int
	Sid                issuerAndSerial
	DigestAlgorithm    pkix.AlgorithmIdentifier
	AuthAttrs          asn1.RawValue `asn1:"optional,tag:0"`
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          []byte
	UnauthAttrs        asn1.RawValue `asn1:"optional,tag:1"`
}

type attribute struct {
	Type   asn1.ObjectIdentifier
	Values asn1.RawValue `asn1:"set"`
}

// Message is a parsed SignedData with one signer.
type Message struct {
	// ContentType is the encapsulated content's type, nil Content when
	// detached. ContentDER is the content's whole DER element; Content
	// its value octets (without tag and length): what the signer's
	// message digest is over.
	ContentType asn1.ObjectIdentifier
	ContentDER  []byte
	Content     []byte
	// Certificates are those the message carries (untrusted).
	Certificates []*x509.Certificate

	signer signerInfo
	hash   crypto.Hash
}

// Parse reads a DER PKCS#7 ContentInfo holding SignedData.
func Parse(der []byte) (*Message, error) {
	if len(der) > MaxSize {
		return nil, invalidf("%d bytes, more than %d", len(der), MaxSize)
	}
	var ci contentInfo
	rest, err := asn1.Unmarshal(der, &ci)
	if err != nil {
		return nil, invalidf("%v", err)
	}
	if len(rest) > 0 {
		return nil, invalidf("%d bytes after the message", len(rest))
	}
	if !ci.ContentType.Equal(OIDSignedData) {
		return nil, invalidf("content type %v, not SignedData", ci.ContentType)
	}
	var sd signedData
	// An explicit RawValue holds the whole inner element in Bytes.
	if rest, err = asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil || len(rest) > 0 {
		return nil, invalidf("SignedData: %v", errOr(err, "trailing bytes"))
	}
	if len(sd.SignerInfos) != 1 {
		return nil, invalidf("%d signers; augen checks messages with one", len(sd.SignerInfos))
	}
	m := &Message{ContentType: sd.Encap.ContentType, signer: sd.SignerInfos[0]}
	if len(sd.Encap.Content.FullBytes) > 0 {
		var inner asn1.RawValue
		if rest, err := asn1.Unmarshal(sd.Encap.Content.Bytes, &inner); err != nil || len(rest) > 0 {
			return nil, invalidf("content: %v", errOr(err, "trailing bytes"))
		}
		m.ContentDER, m.Content = inner.FullBytes, inner.Bytes
	}
	if len(sd.Certificates.Bytes) > 0 {
		if m.Certificates, err = x509.ParseCertificates(sd.Certificates.Bytes); err != nil {
			return nil, invalidf("certificates: %v", err)
		}
	}
	switch alg := m.signer.DigestAlgorithm.Algorithm; {
	case alg.Equal(oidSHA256):
		m.hash = crypto.SHA256
	case alg.Equal(oidSHA384):
		m.hash = crypto.SHA384
	case alg.Equal(oidSHA512):
		m.hash = crypto.SHA512
	default:
		return nil, invalidf("digest algorithm %v (SHA-256, SHA-384 or SHA-512 only)", alg)
	}
	return m, nil
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// Hash is the signer's digest algorithm.
func (m *Message) Hash() crypto.Hash { return m.hash }

// SignerMatches reports whether cert is the one the signer names (issuer
// and serial number).
func (m *Message) SignerMatches(cert *x509.Certificate) bool {
	return bytes.Equal(cert.RawIssuer, m.signer.Sid.Issuer.FullBytes) && cert.SerialNumber.Cmp(m.signer.Sid.Serial) == 0
}

// SignerCertificate is the certificate the message carries for its signer
// (nil if it carries none).
func (m *Message) SignerCertificate() *x509.Certificate {
	for _, c := range m.Certificates {
		if m.SignerMatches(c) {
			return c
		}
	}
	return nil
}

// Verify checks the signer's signature with cert's key over content
// (digested with the signer's algorithm): directly when the message has
// no authenticated attributes, else through them, whose message digest
// must be the content's and whose content type the message's. cert must
// be the certificate the signer names.
func (m *Message) Verify(cert *x509.Certificate, content []byte) error {
	if !m.SignerMatches(cert) {
		return fmt.Errorf("%w: the signer is %s serial %s, not the certificate %s", ErrVerify, issuerName(m.signer.Sid.Issuer.FullBytes), m.signer.Sid.Serial, cert.Subject)
	}
	h := m.hash.New()
	h.Write(content)
	digest := h.Sum(nil)
	signed := content
	if len(m.signer.AuthAttrs.FullBytes) > 0 {
		var attrs []attribute
		rest, err := asn1.UnmarshalWithParams(m.signer.AuthAttrs.FullBytes, &attrs, "set,tag:0")
		if err != nil || len(rest) > 0 {
			return invalidf("authenticated attributes: %v", errOr(err, "trailing bytes"))
		}
		var gotDigest []byte
		var gotType asn1.ObjectIdentifier
		for _, a := range attrs {
			var err error
			switch {
			case a.Type.Equal(oidMessageDigest):
				if gotDigest != nil {
					return invalidf("two message digests")
				}
				_, err = asn1.Unmarshal(a.Values.Bytes, &gotDigest)
			case a.Type.Equal(oidContentType):
				_, err = asn1.Unmarshal(a.Values.Bytes, &gotType)
			}
			if err != nil {
				return invalidf("attribute %v: %v", a.Type, err)
			}
		}
		if !bytes.Equal(gotDigest, digest) {
			return fmt.Errorf("%w: the signed message digest is not the content's", ErrVerify)
		}
		if !gotType.Equal(m.ContentType) {
			return fmt.Errorf("%w: the signed content type %v is not the message's %v", ErrVerify, gotType, m.ContentType)
		}
		// The attributes are signed as a SET, not with their [0] tag.
		signed = append([]byte{0x31}, m.signer.AuthAttrs.FullBytes[1:]...)
	}
	alg, err := m.signatureAlgorithm(cert)
	if err != nil {
		return err
	}
	if err := cert.CheckSignature(alg, signed, m.signer.Signature); err != nil {
		return fmt.Errorf("%w: %v", ErrVerify, err)
	}
	return nil
}

// signatureAlgorithm maps the signer's algorithms to x509's.
func (m *Message) signatureAlgorithm(cert *x509.Certificate) (x509.SignatureAlgorithm, error) {
	sa := m.signer.SignatureAlgorithm.Algorithm
	rsa := sa.Equal(oidRSA) || sa.Equal(oidSHA256RSA) || sa.Equal(oidSHA384RSA) || sa.Equal(oidSHA512RSA)
	ec := sa.Equal(oidECPublicKey) || sa.Equal(oidECDSA256) || sa.Equal(oidECDSA384) || sa.Equal(oidECDSA512)
	switch {
	case rsa && m.hash == crypto.SHA256:
		return x509.SHA256WithRSA, nil
	case rsa && m.hash == crypto.SHA384:
		return x509.SHA384WithRSA, nil
	case rsa && m.hash == crypto.SHA512:
		return x509.SHA512WithRSA, nil
	case ec && m.hash == crypto.SHA256:
		return x509.ECDSAWithSHA256, nil
	case ec && m.hash == crypto.SHA384:
		return x509.ECDSAWithSHA384, nil
	case ec && m.hash == crypto.SHA512:
		return x509.ECDSAWithSHA512, nil
	}
	return 0, invalidf("signature algorithm %v with %v", sa, m.hash)
}

func issuerName(der []byte) string {
	var rdn pkix.RDNSequence
	if _, err := asn1.Unmarshal(der, &rdn); err != nil {
		return "(unreadable issuer)"
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdn)
	return n.String()
}
