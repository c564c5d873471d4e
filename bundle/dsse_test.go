package bundle

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"testing"

	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/pubkey"
)

func testSigners(t *testing.T) []crypto.Signer {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	return []crypto.Signer{testutil.Key(t, "a"), testutil.Key(t, "b"), ec, ed}
}

func trustedOf(signers ...crypto.Signer) map[string]crypto.PublicKey {
	m := map[string]crypto.PublicKey{}
	for _, s := range signers {
		id, _ := pubkey.Fingerprint(s.Public())
		m[id] = s.Public()
	}
	return m
}

func TestSignVerify(t *testing.T) {
	ss := testSigners(t)
	e := NewEnvelope(PayloadTypeInToto, []byte(`{"_type":"https://in-toto.io/Statement/v1"}`))
	for _, s := range ss {
		if err := e.Sign(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Sign(ss[0]); err == nil {
		t.Fatal("a key signed twice")
	}
	valid, untrusted, err := e.Verify(trustedOf(ss[0], ss[2]))
	if err != nil || len(valid) != 2 || len(untrusted) != 2 {
		t.Fatalf("valid %v untrusted %v err %v", valid, untrusted, err)
	}
	// Any change to the payload or type breaks every trusted signature.
	for _, alter := range []func(*Envelope){
		func(x *Envelope) { x.PayloadType = "application/json" },
		func(x *Envelope) { x.Payload = NewEnvelope("", []byte(`{"_type":"other"}`)).Payload },
	} {
		c := *e
		c.Signatures = append([]Signature(nil), e.Signatures...)
		alter(&c)
		if _, _, err := c.Verify(trustedOf(ss...)); !errors.Is(err, ErrEnvelope) {
			t.Fatalf("altered envelope: %v", err)
		}
	}
}

// The order officers sign in does not change the envelope's bytes.
func TestDeterministic(t *testing.T) {
	a, b := testutil.Key(t, "a"), testutil.Key(t, "b")
	e1, e2 := NewEnvelope(PayloadTypeInToto, []byte("x")), NewEnvelope(PayloadTypeInToto, []byte("x"))
	e1.Sign(a)
	e1.Sign(b)
	e2.Sign(b)
	e2.Sign(a)
	m1, _ := e1.Marshal()
	m2, _ := e2.Marshal()
	if !bytes.Equal(m1, m2) {
		t.Fatal("envelope depends on signing order")
	}
}

// stdVerifier is a verifier built from nothing but a public key, for the
// generic DSSE implementation.
type stdVerifier struct{ pub crypto.PublicKey }

func (v stdVerifier) Verify(_ context.Context, data, sig []byte) error {
	d := sha256.Sum256(data)
	switch k := v.pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], sig)
	case *ecdsa.PublicKey:
		if ecdsa.VerifyASN1(k, d[:], sig) {
			return nil
		}
	case ed25519.PublicKey:
		if ed25519.Verify(k, data, sig) {
			return nil
		}
	}
	return errors.New("bad signature")
}

// KeyID follows augen's convention (DSSE leaves key IDs to the
// application): the hex SHA-256 of the key's SubjectPublicKeyInfo.
func (v stdVerifier) KeyID() (string, error)   { return pubkey.Fingerprint(v.pub) }
func (v stdVerifier) Public() crypto.PublicKey { return v.pub }

// The envelope verifies with the generic DSSE implementation of
// go-securesystemslib, given only the public keys, and its key IDs are
// computed from the public key alone.
func TestGenericDSSE(t *testing.T) {
	for _, s := range testSigners(t) {
		e := NewEnvelope(PayloadTypeInToto, []byte(`{"hello":"world"}`))
		if err := e.Sign(s); err != nil {
			t.Fatal(err)
		}
		b, _ := e.Marshal()
		var ge ssldsse.Envelope
		if err := json.Unmarshal(b, &ge); err != nil {
			t.Fatal(err)
		}
		ev, err := ssldsse.NewEnvelopeVerifier(stdVerifier{s.Public()})
		if err != nil {
			t.Fatal(err)
		}
		keys, err := ev.Verify(context.Background(), &ge)
		if err != nil || len(keys) != 1 || keys[0].KeyID != e.Signatures[0].KeyID {
			t.Fatalf("%T: %v %+v", s.Public(), err, keys)
		}
	}
}
