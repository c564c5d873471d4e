package signer

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/augen-project/augen/pubkey"
)

// openFile opens a PKCS#1 or PKCS#8 PEM private key file. The file must
// be readable by its owner only, unless opts allow otherwise; encrypted
// keys are refused with a hint, since augen never asks for a key file's
// passphrase.
func openFile(path string, opts *Options) (Signer, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: file: needs a path, e.g. file:/path/key.pem", ErrUnsupported)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("signer: opening key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("signer: key %s is not a regular file", path)
	}
	if st.Size() > pubkey.MaxPEMSize {
		return nil, fmt.Errorf("signer: key %s is %d bytes: too large for a key file", path, st.Size())
	}
	if err := checkPrivate(path, st.Mode()); err != nil && !opts.AllowInsecureKeyFile {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signer: reading key: %w", err)
	}
	key, err := parsePrivate(b)
	if err != nil {
		return nil, fmt.Errorf("signer: key %s: %w", path, err)
	}
	if rk, ok := key.Public().(*rsa.PublicKey); ok {
		warnKeySize(rk, "file:"+path, opts)
	}
	return newChecked(key, "file:"+path)
}

func parsePrivate(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block found (expected a PEM private key)")
	}
	if blk.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(blk.Headers["Proc-Type"], "ENCRYPTED") {
		return nil, errors.New("the key is encrypted; augen does not prompt for key file passphrases (decrypt it into a 0600 file, or better, keep it in an HSM or TPM)")
	}
	switch blk.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		rk, isRSA := k.(*rsa.PrivateKey)
		if !isRSA {
			return nil, fmt.Errorf("this is %s private key; update_engine verifies only RSA signatures: an RSA key (2048 bits) is needed", keyKind(k))
		}
		if err := rk.Validate(); err != nil {
			return nil, err
		}
		return rk, nil
	case "EC PRIVATE KEY":
		return nil, errors.New("this is an EC private key; update_engine verifies only RSA signatures: an RSA private key (2048 bits) is needed")
	case "PUBLIC KEY", "RSA PUBLIC KEY":
		return nil, errors.New("this is a public key; signing needs the RSA private key (augen key pubkey prints a public key's fingerprint)")
	case "CERTIFICATE":
		return nil, errors.New("this is a certificate; signing needs the RSA private key")
	}
	return nil, fmt.Errorf("PEM block %q is not a private key; an RSA private key (RSA PRIVATE KEY or PRIVATE KEY) is needed", blk.Type)
}

// keyKind names a parsed private key's type with its article.
func keyKind(k any) string {
	switch k.(type) {
	case *ecdsa.PrivateKey:
		return "an EC (ECDSA)"
	case ed25519.PrivateKey:
		return "an Ed25519"
	case *ecdh.PrivateKey:
		return "an ECDH"
	}
	return fmt.Sprintf("a %T", k)
}
