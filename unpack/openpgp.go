package unpack

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/augen-project/augen"
)

// maxKeyFile bounds key and signature files.
const maxKeyFile = 1 << 20

// VerifyImageSignature checks a detached OpenPGP signature (binary .sig or
// armored .asc, as Flatcar's release flow makes with the buildbot key) of
// the image file against the public keys in keyFile (armored or binary).
// It returns the signer's identity. The image is read once, before anything
// is decoded: nothing is unpacked from an image whose origin is unproven.
func VerifyImageSignature(imagePath, sigPath, keyFile string) (string, error) {
	ring, err := readKeyRing(keyFile)
	if err != nil {
		return "", err
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
	return signerName(signer), nil
}

func signerName(signer *openpgp.Entity) string {
	for name := range signer.Identities {
		return name
	}
	return fmt.Sprintf("%X", signer.PrimaryKey.Fingerprint)
}

// readSmall reads a key, signature or DIGESTS file of at most maxKeyFile.
func readSmall(p string) ([]byte, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if st.Size() > maxKeyFile {
		return nil, fmt.Errorf("%s is %d bytes: too large for a key, signature or DIGESTS file", p, st.Size())
	}
	return os.ReadFile(p)
}

// readKeyRing reads the OpenPGP public keys in keyFile (armored or binary).
func readKeyRing(keyFile string) (openpgp.EntityList, error) {
	kb, err := readSmall(keyFile)
	if err != nil {
		return nil, err
	}
	var ring openpgp.EntityList
	if bytes.Contains(kb, []byte("-----BEGIN PGP")) {
		ring, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(kb))
	} else {
		ring, err = openpgp.ReadKeyRing(bytes.NewReader(kb))
	}
	if err != nil || len(ring) == 0 {
		return nil, fmt.Errorf("signing key %s: not an OpenPGP public key (%v)", keyFile, err)
	}
	return ring, nil
}

// IsClearsigned reports whether the file at path is an OpenPGP
// clearsigned message (Flatcar's DIGESTS.asc), by its first line.
func IsClearsigned(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 64)
	n, _ := io.ReadFull(f, buf)
	return bytes.HasPrefix(bytes.TrimLeft(buf[:n], " \t\r\n"), []byte(clearsignHeader))
}

const clearsignHeader = "-----BEGIN PGP SIGNED MESSAGE-----"

// ReadDigests reads a DIGESTS file. A clearsigned one (DIGESTS.asc, as
// Flatcar publishes it) is verified against keyFile first, and its signer
// returned; an unsigned one ("" signer) proves nothing about the image by
// itself: whoever can replace the image can replace the file beside it.
func ReadDigests(path, keyFile string) (content []byte, signedBy string, err error) {
	b, err := readSmall(path)
	if err != nil {
		return nil, "", err
	}
	if !bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte(clearsignHeader)) {
		return b, "", nil
	}
	if keyFile == "" {
		return nil, "", fmt.Errorf("%w: %s is signed: give the key it must come from (--signing-key)", ErrImage, path)
	}
	ring, err := readKeyRing(keyFile)
	if err != nil {
		return nil, "", err
	}
	block, rest := clearsign.Decode(b)
	if block == nil {
		return nil, "", fmt.Errorf("%w: %s: not a valid clearsigned message", ErrImage, path)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, "", fmt.Errorf("%w: %s: %d bytes after the signed message", ErrImage, path, len(rest))
	}
	signer, err := block.VerifySignature(ring, nil)
	if err != nil {
		why := err.Error()
		if errors.Is(err, pgperrors.ErrUnknownIssuer) || strings.Contains(why, "unknown issuer") {
			why = "it was not made by any key in " + keyFile
		}
		return nil, "", fmt.Errorf("%w: the OpenPGP signature of %s does not verify: %s", ErrImage, path, why)
	}
	return block.Plaintext, signerName(signer), nil
}

// Signature is a verified detached OpenPGP signature of a file.
type Signature struct {
	File string `json:"file"`
	// Signer is the key's identity; KeyID the (sub)key that signed, in
	// hex; Expires when that key expires (zero: never).
	Signer  string    `json:"signer"`
	KeyID   string    `json:"key_id"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
	// Expired is set when the key had expired (or was revoked) at the
	// time of the check, and that was allowed.
	Expired bool `json:"expired,omitempty"`
}

// ErrKeyExpired means a signature was made by a key that has expired or
// was revoked by the time it is checked.
var ErrKeyExpired = augen.Rejection("unpack: the signing key has expired or was revoked")

// SignatureOptions tune VerifyFileSignature.
type SignatureOptions struct {
	// Now is the time the signing key must be valid at (zero: the clock).
	Now time.Time
	// AllowExpired accepts a signature by a key that has expired or was
	// revoked since it signed (re-releasing an old build), as gpg does;
	// the key must still have been valid when it signed.
	AllowExpired bool
}

// VerifyFileSignature checks a detached OpenPGP signature (binary or
// armored) of the file at path against the keys in keyFile, before the
// file is used. The signing key, a subkey as Flatcar's buildbot rotates
// them yearly, must be valid now: one that has expired or was revoked is
// refused (ErrKeyExpired; gpg still says "Good signature" for it) unless
// opts.AllowExpired.
func VerifyFileSignature(path, sigPath, keyFile string, opts SignatureOptions) (*Signature, error) {
	ring, err := readKeyRing(keyFile)
	if err != nil {
		return nil, err
	}
	sb, err := readSmall(sigPath)
	if err != nil {
		return nil, err
	}
	if bytes.Contains(sb, []byte("-----BEGIN PGP SIGNATURE")) {
		blk, err := armor.Decode(bytes.NewReader(sb))
		if err != nil {
			return nil, fmt.Errorf("signature %s: %v", sigPath, err)
		}
		if sb, err = io.ReadAll(io.LimitReader(blk.Body, maxKeyFile)); err != nil {
			return nil, fmt.Errorf("signature %s: %v", sigPath, err)
		}
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	check := func(at time.Time) (*packet.Signature, *openpgp.Entity, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		return openpgp.VerifyDetachedSignature(ring, f, bytes.NewReader(sb), &packet.Config{Time: func() time.Time { return at }})
	}
	sig, signer, err := check(now)
	expired := sig != nil && (errors.Is(err, pgperrors.ErrKeyExpired) || errors.Is(err, pgperrors.ErrKeyRevoked))
	if expired && opts.AllowExpired {
		// Valid when it signed?
		sig, signer, err = check(sig.CreationTime)
	}
	if err != nil && !expired {
		why := err.Error()
		if errors.Is(err, pgperrors.ErrUnknownIssuer) || strings.Contains(why, "unknown issuer") {
			why = "it was not made by any key in " + keyFile
		}
		return nil, fmt.Errorf("%w: the OpenPGP signature %s does not verify %s: %s", ErrImage, sigPath, path, why)
	}
	out := &Signature{File: path, Signer: signerName(signer), Created: sig.CreationTime.UTC(), Expired: expired}
	if sig.IssuerKeyId != nil {
		out.KeyID = fmt.Sprintf("%016X", *sig.IssuerKeyId)
		out.Expires = keyExpiry(signer, *sig.IssuerKeyId)
	}
	if expired && !opts.AllowExpired {
		when := "has expired or was revoked"
		if !out.Expires.IsZero() && out.Expires.Before(now) {
			when = "expired on " + out.Expires.Format("2006-01-02")
		}
		return out, fmt.Errorf("%w: %s is signed by %s's subkey %s, which %s; gpg still calls it a good signature, augen does not (give --allow-expired-signing-key to re-release an old build)", ErrKeyExpired, path, out.Signer, out.KeyID, when)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: the OpenPGP signature %s does not verify %s: %v", ErrImage, sigPath, path, err)
	}
	return out, nil
}

// keyExpiry is when the (sub)key id of e expires (zero: never).
func keyExpiry(e *openpgp.Entity, id uint64) time.Time {
	if e.PrimaryKey.KeyId == id {
		if sig, _ := e.PrimarySelfSignature(); sig != nil && sig.KeyLifetimeSecs != nil && *sig.KeyLifetimeSecs > 0 {
			return e.PrimaryKey.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second).UTC()
		}
		return time.Time{}
	}
	for _, sk := range e.Subkeys {
		if sk.PublicKey.KeyId == id && sk.Sig != nil && sk.Sig.KeyLifetimeSecs != nil && *sk.Sig.KeyLifetimeSecs > 0 {
			return sk.PublicKey.CreationTime.Add(time.Duration(*sk.Sig.KeyLifetimeSecs) * time.Second).UTC()
		}
	}
	return time.Time{}
}
