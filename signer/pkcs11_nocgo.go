//go:build !cgo

package signer

import (
	"context"
	"crypto"
	"fmt"
)

// PKCS11Available reports whether this build has the PKCS#11 backend (it
// needs cgo to load the module).
const PKCS11Available = false

func openPKCS11(ctx context.Context, uri string, opts *Options) (Signer, error) {
	return nil, fmt.Errorf("%w %q: this augen was built without cgo, and the PKCS#11 backend needs it (build with CGO_ENABLED=1)", ErrUnsupported, Redact(uri))
}

func generatePKCS11(uri string, bits int, opts *Options) error {
	_, err := openPKCS11(context.Background(), uri, opts)
	return err
}

func listPKCS11(uri string, opts *Options) ([]KeyInfo, error) {
	_, err := openPKCS11(context.Background(), uri, opts)
	return nil, err
}

func publicPKCS11(uri string) (crypto.PublicKey, bool, error) {
	_, err := openPKCS11(context.Background(), uri, nil)
	return nil, false, err
}
