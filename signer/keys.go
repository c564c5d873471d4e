package signer

import (
	"context"
	"crypto"
	"crypto/rsa"
	"fmt"
	"strings"
)

// KeyInfo describes a key found in a token or TPM.
type KeyInfo struct {
	URI         string `json:"uri"`
	Label       string `json:"label,omitempty"`
	ID          string `json:"id,omitempty"` // hex
	Type        string `json:"type"`
	Bits        int    `json:"bits,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Generate creates a new RSA signing key inside the token or TPM that uri
// names and returns it opened. The private key never leaves the hardware:
// PKCS#11 keys are sensitive and not extractable; TPM keys are FixedTPM
// (tpm:key=PATH writes a key file only this TPM can load; tpm:handle=…
// persists the key at that handle).
func Generate(ctx context.Context, uri string, bits int, opts *Options) (Signer, error) {
	if opts == nil {
		opts = &Options{}
	}
	if bits == 0 {
		bits = 2048
	}
	if bits != 2048 {
		opts.warn(fmt.Sprintf("generating an RSA-%d key: update_engine before late 2022 verifies only RSA-2048 signatures", bits))
	}
	switch scheme, _, _ := strings.Cut(uri, ":"); scheme {
	case "pkcs11":
		if err := generatePKCS11(uri, bits, opts); err != nil {
			return nil, err
		}
	case "tpm":
		if err := generateTPM(uri, bits, nil, opts); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w %q: keys are generated only inside a PKCS#11 token (pkcs11:) or a TPM (tpm:)", ErrUnsupported, Redact(uri))
	}
	return Open(ctx, uri, opts)
}

// ImportTPM puts an existing RSA key under the TPM's storage root key
// (TPM2_Import of a duplicate wrapped to the SRK), so that a key kept in an
// offline backup can be restored into a new TPM. The key is written as a
// key file (tpm:key=PATH) or persisted (tpm:handle=…).
func ImportTPM(ctx context.Context, uri string, key *rsa.PrivateKey, opts *Options) (Signer, error) {
	if opts == nil {
		opts = &Options{}
	}
	if !strings.HasPrefix(uri, "tpm:") {
		return nil, fmt.Errorf("%w %q: import needs a tpm: URI", ErrUnsupported, Redact(uri))
	}
	if err := generateTPM(uri, key.N.BitLen(), key, opts); err != nil {
		return nil, err
	}
	return Open(ctx, uri, opts)
}

// List returns the keys a pkcs11: URI matches (all private keys of the
// matching token when it names no object).
func List(ctx context.Context, uri string, opts *Options) ([]KeyInfo, error) {
	if opts == nil {
		opts = &Options{}
	}
	if !strings.HasPrefix(uri, "pkcs11:") {
		return nil, fmt.Errorf("%w %q: list takes a pkcs11: URI", ErrUnsupported, Redact(uri))
	}
	return listPKCS11(uri, opts)
}

// PublicKey returns the public key of a pkcs11: URI's key from the
// token's public key object, without logging in (a public object needs no
// PIN), when the token holds one that matches; ok is false when it does
// not, and the caller opens the key (which may ask for the PIN).
func PublicKey(ctx context.Context, uri string) (pub crypto.PublicKey, ok bool, err error) {
	if !strings.HasPrefix(uri, "pkcs11:") {
		return nil, false, nil
	}
	return publicPKCS11(uri)
}
