package unpack

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
)

// maxKeyFile bounds key and signature files.
const maxKeyFile = 1 << 20

// VerifyImageSignature checks a detached OpenPGP signature (binary .sig or
// armored .asc, as Flatcar's release flow makes with the buildbot key) of
// the image file against the public keys in keyFile (armored or binary).
// It returns the signer's identity. The image is read once, before anything
// is decoded: nothing is unpacked from an image whose origin is unproven.
func VerifyImageSignature(imagePath, sigPath, keyFile string) (string, error) {
	readSmall := func(p string) ([]byte, error) {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if st.Size() > maxKeyFile {
			return nil, fmt.Errorf("%s is %d bytes: too large for a key or signature", p, st.Size())
		}
		return os.ReadFile(p)
	}
	kb, err := readSmall(keyFile)
	if err != nil {
		return "", err
	}
	var ring openpgp.EntityList
	if bytes.Contains(kb, []byte("-----BEGIN PGP")) {
		ring, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(kb))
	} else {
		ring, err = openpgp.ReadKeyRing(bytes.NewReader(kb))
	}
	if err != nil || len(ring) == 0 {
		return "", fmt.Errorf("signing key %s: not an OpenPGP public key (%v)", keyFile, err)
	}
	sb, err := readSmall(sigPath)
	if err != nil {
		return "", err
	}
	if bytes.Contains(sb, []byte("-----BEGIN PGP SIGNATURE")) {
		blk, err := armor.Decode(bytes.NewReader(sb))
		if err != nil {
			return "", fmt.Errorf("signature %s: %v", sigPath, err)
		}
		if sb, err = io.ReadAll(io.LimitReader(blk.Body, maxKeyFile)); err != nil {
			return "", fmt.Errorf("signature %s: %v", sigPath, err)
		}
	}
	img, err := os.Open(imagePath)
	if err != nil {
		return "", err
	}
	defer img.Close()
	signer, err := openpgp.CheckDetachedSignature(ring, img, bytes.NewReader(sb), nil)
	if err != nil {
		why := err.Error()
		if errors.Is(err, pgperrors.ErrUnknownIssuer) || strings.Contains(why, "unknown issuer") {
			why = "it was not made by any key in " + keyFile
		}
		return "", fmt.Errorf("%w: the OpenPGP signature %s does not verify %s: %s", ErrImage, sigPath, imagePath, why)
	}
	for name := range signer.Identities {
		return name, nil
	}
	return fmt.Sprintf("%X", signer.PrimaryKey.Fingerprint), nil
}
