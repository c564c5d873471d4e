// Package signertest is the conformance suite every signer backend passes:
// the public key is the one expected, signatures verify with crypto/rsa and
// have the advertised size, only SHA-256 digests of exactly 32 bytes are
// signed, and concurrent use is safe. Backends outside this module can run
// it too.
package signertest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"

	"github.com/augen-project/augen/pubkey"
	"github.com/augen-project/augen/signer"
)

// Run checks s. want, when not nil, is the public key s must hold.
func Run(t *testing.T, s signer.Signer, want crypto.PublicKey) {
	t.Helper()
	pub, ok := s.Public().(*rsa.PublicKey)
	if !ok {
		t.Fatalf("%s: public key is %T, want *rsa.PublicKey", s.URI(), s.Public())
	}
	if want != nil {
		if w, ok := want.(*rsa.PublicKey); !ok || !w.Equal(pub) {
			t.Fatalf("%s: public key differs from the expected one", s.URI())
		}
	}
	if fp, _ := pubkey.Fingerprint(pub); fp != s.Fingerprint() {
		t.Errorf("%s: Fingerprint() %s, SPKI SHA-256 is %s", s.URI(), s.Fingerprint(), fp)
	}
	d := sha256.Sum256([]byte("augen signer conformance"))
	sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("%s: Sign: %v", s.URI(), err)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig); err != nil {
		t.Fatalf("%s: signature does not verify: %v", s.URI(), err)
	}
	if len(sig) != s.SignatureSize() {
		t.Errorf("%s: signature is %d bytes, SignatureSize() says %d", s.URI(), len(sig), s.SignatureSize())
	}
	again, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil || string(again) != string(sig) {
		t.Errorf("%s: PKCS#1 v1.5 is deterministic, but a second signature differs (%v)", s.URI(), err)
	}
	for _, n := range []int{0, 20, 31, 33, 64} {
		if _, err := s.Sign(rand.Reader, make([]byte, n), crypto.SHA256); err == nil {
			t.Errorf("%s: signed a %d-byte \"SHA-256\" digest", s.URI(), n)
		}
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA384, crypto.SHA512} {
		if _, err := s.Sign(rand.Reader, make([]byte, h.Size()), h); err == nil {
			t.Errorf("%s: signed with %v although only SHA-256 is supported", s.URI(), h)
		}
	}
	if _, err := s.Sign(rand.Reader, d[:], &rsa.PSSOptions{Hash: crypto.SHA256}); err == nil {
		t.Errorf("%s: made an RSA-PSS signature; update_engine verifies PKCS#1 v1.5 only", s.URI())
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 4 {
				d := sha256.Sum256(fmt.Appendf(nil, "%d/%d", g, i))
				sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
				if err == nil {
					err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("%s: concurrent signing: %v", s.URI(), err)
	}
}
