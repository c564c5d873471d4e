// Package signer opens signing keys from one URI syntax and returns them as
// crypto.Signers that check what they are asked to sign and prove every
// signature before returning it.
//
// Backends: "file:PATH" (a PEM key file), "pkcs11:…" (an RFC 7512 URI of a
// key in an HSM or token; needs cgo) and "tpm:…" (a key held by a TPM 2.0).
// signer knows nothing of payloads: it signs SHA-256 digests.
package signer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/pubkey"
)

// Signer is an opened key.
type Signer interface {
	crypto.Signer
	// URI is the key's URI as given (secrets removed).
	URI() string
	// Fingerprint is the hex SHA-256 of the public key's
	// SubjectPublicKeyInfo.
	Fingerprint() string
	// SignatureSize is the size of one signature in bytes.
	SignatureSize() int
	// Close releases the key.
	Close() error
}

// Options changes how keys are opened.
type Options struct {
	// AllowInsecureKeyFile accepts key files that users other than the
	// owner can read. Never appropriate for official keys.
	AllowInsecureKeyFile bool
	// TPM, if set, is used for tpm: keys instead of the URI's device (tests
	// pass a simulator; a program may share one connection).
	TPM transport.TPM
	// Log receives warnings (a PIN in a URI, an unusual key size).
	Log augen.Log
	// RequireAuth (--official) refuses a TPM key without an auth value:
	// anyone who can copy its key file and reach the TPM could sign.
	RequireAuth bool
	// NoAuth lets Generate make a TPM key without an auth value; without
	// it, one is read from pin-source=, the environment or a prompt
	// (entered twice) and an empty one is refused.
	NoAuth bool
}

func (o *Options) warn(msg string) {
	if o != nil {
		o.Log.Warn(msg)
	}
}

// Errors.
var (
	ErrUnsupported = errors.New("signer: unsupported key URI")
	ErrInsecure    = errors.New("signer: insecure key file")
	// ErrInsecureSecret is a PIN, token or password file others can read.
	ErrInsecureSecret = errors.New("insecure secret file")
	// ErrNoAuth is a TPM key without an auth value where one is required.
	ErrNoAuth = errors.New("signer: TPM key without an auth value")
	ErrVerify = errors.New("signer: signature does not verify against the public key")
)

// Open opens the key named by uri.
func Open(ctx context.Context, uri string, opts *Options) (Signer, error) {
	if opts == nil {
		opts = &Options{}
	}
	scheme, rest, ok := strings.Cut(uri, ":")
	if !ok {
		return nil, fmt.Errorf("%w %q: expected SCHEME:…, e.g. file:/path/key.pem", ErrUnsupported, uri)
	}
	switch scheme {
	case "file":
		return openFile(rest, opts)
	case "pkcs11":
		return openPKCS11(ctx, uri, opts)
	case "tpm":
		return openTPM(ctx, uri, opts)
	}
	return nil, fmt.Errorf("%w %q: unknown scheme %q (known: file, pkcs11, tpm)", ErrUnsupported, Redact(uri), scheme)
}

// checked wraps a crypto.Signer: it validates the digest, signs, and
// verifies the signature with the public key before returning it.
type checked struct {
	inner       crypto.Signer
	uri         string
	fingerprint string
	size        int
	closer      func() error
}

func newChecked(inner crypto.Signer, uri string) (*checked, error) {
	pub := inner.Public()
	fp, err := pubkey.Fingerprint(pub)
	if err != nil {
		return nil, err
	}
	c := &checked{inner: inner, uri: uri, fingerprint: fp}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		c.size = k.Size()
	case *ecdsa.PublicKey:
		c.size = 2*((k.Curve.Params().BitSize+7)/8) + 9 // DER upper bound
	case ed25519.PublicKey:
		c.size = ed25519.SignatureSize
	default:
		return nil, fmt.Errorf("signer: %s holds an unsupported %T key", uri, pub)
	}
	return c, nil
}

func (c *checked) Public() crypto.PublicKey { return c.inner.Public() }
func (c *checked) URI() string              { return c.uri }
func (c *checked) Fingerprint() string      { return c.fingerprint }
func (c *checked) SignatureSize() int       { return c.size }
func (c *checked) Close() error {
	if c.closer != nil {
		return c.closer()
	}
	return nil
}

// warnKeySize warns about RSA keys that clients older than late 2022
// cannot verify.
func warnKeySize(pub *rsa.PublicKey, uri string, opts *Options) {
	if pub.N.BitLen() != 2048 {
		opts.warn(fmt.Sprintf("%s is an RSA-%d key: update_engine before late 2022 verifies only RSA-2048 signatures", uri, pub.N.BitLen()))
	}
}

// Sign signs a SHA-256 digest (or, for Ed25519, a message with crypto.Hash(0)).
func (c *checked) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if h := opts.HashFunc(); h != 0 {
		if h != crypto.SHA256 {
			return nil, fmt.Errorf("signer: %s: only SHA-256 digests are signed, not %v", c.uri, h)
		}
		if len(digest) != sha256.Size {
			return nil, fmt.Errorf("signer: %s: digest is %d bytes, a SHA-256 digest is %d", c.uri, len(digest), sha256.Size)
		}
	}
	sig, err := c.inner.Sign(rand, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("signer: %s: %w", c.uri, err)
	}
	if err := Verify(c.Public(), digest, sig, opts); err != nil {
		return nil, fmt.Errorf("%w (%s)", err, c.uri)
	}
	return sig, nil
}

// Verify checks a signature made by Sign.
func Verify(pub crypto.PublicKey, digest, sig []byte, opts crypto.SignerOpts) error {
	ok := false
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if pss, isPSS := opts.(*rsa.PSSOptions); isPSS {
			ok = rsa.VerifyPSS(k, pss.Hash, digest, sig, pss) == nil
		} else {
			ok = rsa.VerifyPKCS1v15(k, opts.HashFunc(), digest, sig) == nil
		}
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, digest, sig)
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, digest, sig)
	}
	if !ok {
		return ErrVerify
	}
	return nil
}

func fingerprintOf(pub crypto.PublicKey) (string, error) { return pubkey.Fingerprint(pub) }

// wrapHardware turns an opened hardware key into a Signer that checks and
// verifies, closes the key with it, and warns about unusual key sizes.
func wrapHardware(inner crypto.Signer, uri string, pub *rsa.PublicKey, closer func() error, opts *Options) (Signer, error) {
	c, err := newChecked(inner, uri)
	if err != nil {
		closer()
		return nil, err
	}
	c.closer = closer
	warnKeySize(pub, uri, opts)
	return c, nil
}

// keyError is an error about one key: "signer: URI: what", with the
// inner error's own "signer: " prefix dropped so that it is said once.
type keyError struct {
	uri string
	err error
}

func (e *keyError) Error() string {
	return "signer: " + e.uri + ": " + strings.TrimPrefix(e.err.Error(), "signer: ")
}

func (e *keyError) Unwrap() error { return e.err }

// uriErr says that err is about the key at uri.
func uriErr(uri string, err error) error { return &keyError{uri: uri, err: err} }
