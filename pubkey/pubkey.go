// Package pubkey reads public keys and names them the same way everywhere:
// a fingerprint is the hex SHA-256 of the key's DER SubjectPublicKeyInfo,
// the form update_engine reads from update-payload-key.pub.pem.
package pubkey

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// MaxPEMSize bounds a public key file.
const MaxPEMSize = 64 << 10

// Fingerprint is the hex SHA-256 of the key's SubjectPublicKeyInfo DER.
func Fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// PEM encodes a public key as "PUBLIC KEY" (SubjectPublicKeyInfo).
func PEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// Parse reads a PEM public key: SubjectPublicKeyInfo ("PUBLIC KEY") or
// PKCS#1 ("RSA PUBLIC KEY"). Anything after the first block is an error.
func Parse(b []byte) (crypto.PublicKey, error) {
	blk, rest := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block found")
	}
	if len(trimSpace(rest)) > 0 {
		return nil, errors.New("unexpected data after the PEM block")
	}
	switch blk.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(blk.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(blk.Bytes)
	}
	if blk.Type == "RSA PRIVATE KEY" || blk.Type == "PRIVATE KEY" || blk.Type == "ENCRYPTED PRIVATE KEY" {
		return nil, fmt.Errorf("this is a private key (%s); give the public key (augen key pubkey, or openssl rsa -pubout)", blk.Type)
	}
	return nil, fmt.Errorf("PEM block %q is not a public key", blk.Type)
}

// Load reads a public key file.
func Load(path string) (crypto.PublicKey, error) {
	b, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	k, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return k, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > MaxPEMSize {
		return nil, fmt.Errorf("%s is %d bytes: too large for a key file", path, st.Size())
	}
	return os.ReadFile(path)
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}
