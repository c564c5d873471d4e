package signer_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"fmt"

	"github.com/augen-project/augen/signer"
)

// Open gives a crypto.Signer for a key wherever it is held: a file, an HSM
// (PKCS#11, RFC 7512 URI) or a TPM. The private key never leaves it.
func ExampleOpen() {
	k, err := signer.Open(context.Background(), "pkcs11:token=release;object=payload-key;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so", nil)
	if err != nil {
		panic(err)
	}
	defer k.Close()
	digest := sha256.Sum256([]byte("payload"))
	sig, err := k.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(sig) == k.SignatureSize(), k.URI())
}
