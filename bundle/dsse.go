// Package bundle is augen's release bundle: a deterministic tar of the
// payloads and an in-toto release statement signed in a DSSE envelope, so
// that generic supply-chain tools can read what augen writes.
//
// This file is the DSSE envelope (github.com/secure-systems-lab/dsse): the
// signature covers PAE(payloadType, payload), so a signature can never be
// taken for one over a different type of document.
package bundle

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/internal/strictjson"
	"github.com/augen-project/augen/pubkey"
)

// PayloadTypeInToto is the DSSE payload type of in-toto statements.
const PayloadTypeInToto = "application/vnd.in-toto+json"

// Envelope is a DSSE envelope. Its JSON is what the bundle stores.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"`
	Signatures  []Signature `json:"signatures"`
}

// Signature is one DSSE signature; KeyID is the signing key's fingerprint
// (hex SHA-256 of its SubjectPublicKeyInfo).
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// ErrEnvelope wraps every reason an envelope does not verify.
var ErrEnvelope = augen.Rejection("bundle: envelope does not verify")

// PAE is DSSE's pre-authentication encoding of a payload and its type.
func PAE(payloadType string, payload []byte) []byte {
	b := []byte("DSSEv1 " + strconv.Itoa(len(payloadType)) + " " + payloadType + " " + strconv.Itoa(len(payload)) + " ")
	return append(b, payload...)
}

// NewEnvelope wraps payload, unsigned.
func NewEnvelope(payloadType string, payload []byte) *Envelope {
	return &Envelope{PayloadType: payloadType, Payload: base64.StdEncoding.EncodeToString(payload), Signatures: []Signature{}}
}

// ParseEnvelope reads an envelope strictly: bounded, exact-case keys, no
// duplicates or unknown fields, nothing after it, and the in-toto payload
// type (the only one a bundle holds).
func ParseEnvelope(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than %d", ErrFormat, EnvelopeName, len(b), MaxEnvelopeSize)
	}
	var env Envelope
	if err := strictjson.Decode(b, &env); err != nil {
		return nil, fmt.Errorf("%w: %s: not a DSSE envelope: %v", ErrFormat, EnvelopeName, err)
	}
	if env.PayloadType != PayloadTypeInToto {
		return nil, fmt.Errorf("%w: %s: payload type %q, want %q", ErrFormat, EnvelopeName, env.PayloadType, PayloadTypeInToto)
	}
	return &env, nil
}

// DecodedPayload returns the payload bytes.
func (e *Envelope) DecodedPayload() ([]byte, error) {
	return base64.StdEncoding.DecodeString(e.Payload)
}

// Sign adds a signature by s: RSA PKCS#1 v1.5 or ECDSA over SHA-256 of the
// PAE, Ed25519 over the PAE itself, as DSSE verifiers expect. Signing twice
// with the same key is refused. Signatures stay sorted by key ID, so the
// envelope does not depend on the order officers signed in.
func (e *Envelope) Sign(s crypto.Signer) error {
	keyID, err := pubkey.Fingerprint(s.Public())
	if err != nil {
		return err
	}
	for _, sig := range e.Signatures {
		if sig.KeyID == keyID {
			return fmt.Errorf("bundle: key %s has signed this envelope already", keyID)
		}
	}
	payload, err := e.DecodedPayload()
	if err != nil {
		return fmt.Errorf("bundle: payload: %w", err)
	}
	pae := PAE(e.PayloadType, payload)
	var sig []byte
	switch s.Public().(type) {
	case ed25519.PublicKey:
		sig, err = s.Sign(rand.Reader, pae, crypto.Hash(0))
	case *rsa.PublicKey, *ecdsa.PublicKey:
		d := sha256.Sum256(pae)
		sig, err = s.Sign(rand.Reader, d[:], crypto.SHA256)
	default:
		return fmt.Errorf("bundle: %T keys cannot sign envelopes", s.Public())
	}
	if err != nil {
		return err
	}
	if err := verifySig(s.Public(), pae, sig); err != nil {
		return fmt.Errorf("bundle: the new signature does not verify: %w", err)
	}
	e.Signatures = append(e.Signatures, Signature{KeyID: keyID, Sig: base64.StdEncoding.EncodeToString(sig)})
	sort.Slice(e.Signatures, func(i, j int) bool { return e.Signatures[i].KeyID < e.Signatures[j].KeyID })
	return nil
}

func verifySig(pub crypto.PublicKey, pae, sig []byte) error {
	ok := false
	switch k := pub.(type) {
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, pae, sig)
	case *rsa.PublicKey:
		d := sha256.Sum256(pae)
		ok = rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], sig) == nil
	case *ecdsa.PublicKey:
		d := sha256.Sum256(pae)
		ok = ecdsa.VerifyASN1(k, d[:], sig)
	}
	if !ok {
		return errors.New("bad signature")
	}
	return nil
}

// Verify checks the signatures against trusted keys (by key ID) and
// returns the IDs of the distinct trusted keys whose signatures verify.
// Signatures by unknown keys are listed in untrusted; a signature by a
// trusted key that does not verify is an error (the envelope was altered).
func (e *Envelope) Verify(trusted map[string]crypto.PublicKey) (valid, untrusted []string, err error) {
	payload, err := e.DecodedPayload()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: payload is not base64: %v", ErrEnvelope, err)
	}
	pae := PAE(e.PayloadType, payload)
	seen := map[string]bool{}
	for i, s := range e.Signatures {
		if seen[s.KeyID] {
			return nil, nil, fmt.Errorf("%w: key %s signed twice", ErrEnvelope, s.KeyID)
		}
		seen[s.KeyID] = true
		pub, ok := trusted[s.KeyID]
		if !ok {
			untrusted = append(untrusted, s.KeyID)
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: signature %d is not base64", ErrEnvelope, i)
		}
		if err := verifySig(pub, pae, sig); err != nil {
			return nil, nil, fmt.Errorf("%w: signature %d by trusted key %s does not verify", ErrEnvelope, i, s.KeyID)
		}
		valid = append(valid, s.KeyID)
	}
	return valid, untrusted, nil
}

// Marshal is the envelope's stored form: compact JSON, fields in a fixed
// order, so the same envelope always has the same bytes.
func (e *Envelope) Marshal() ([]byte, error) { return json.Marshal(e) }

func decodeB64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

// bytesOpener serves b as a member's content.
func bytesOpener(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}
