package main

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/augen-project/augen/pubkey"
	"github.com/augen-project/augen/signer"
)

const keyPubkeyUsage = `Usage: augen key pubkey URI [-o PUB.pem] [--json]

Prints the public key of the key URI names, as SubjectPublicKeyInfo PEM: the
file clients have baked in as update-payload-key.pub.pem, and what
"augen payload verify --pubkey" takes. Its fingerprint (SHA-256 of the DER)
goes to stderr, or into --json. Given a public key file (file:PUB.pem),
it prints that key and its fingerprint: how to tell which key a PEM is.

Key URIs: file:PATH, pkcs11:… (RFC 7512; PIN from pin-source=, $AUGEN_PKCS11_PIN
or a prompt), tpm:handle=0x81…|key=PATH[;device=/dev/tpmrm0|unix:SOCKET].

Example:
  augen key pubkey 'pkcs11:token=release;object=payload;type=private' -o payload.pub.pem
`

// signerOptions are the options every command opens keys with: warnings go
// to stderr as "augen: warning: …".
func signerOptions(e *env, insecure bool) *signer.Options {
	return &signer.Options{
		AllowInsecureKeyFile: insecure,
		Log:                  logTo(e),
	}
}

type keyJSON struct {
	URI         string `json:"uri"`
	Fingerprint string `json:"fingerprint"`
	Bits        int    `json:"bits,omitempty"`
	PEM         string `json:"pem"`
}

func keyResult(s signer.Signer) (keyJSON, error) {
	b, err := pubkey.PEM(s.Public())
	if err != nil {
		return keyJSON{}, err
	}
	k := keyJSON{URI: s.URI(), Fingerprint: s.Fingerprint(), PEM: string(b)}
	if r, ok := s.Public().(*rsa.PublicKey); ok {
		k.Bits = r.N.BitLen()
	}
	return k, nil
}

// printKey writes the PEM to -o or stdout (or JSON) and the fingerprint to stderr.
func printKey(e *env, s signer.Signer, out string, asJSON bool) error {
	k, err := keyResult(s)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(e.stdout, k)
	}
	if out != "" {
		if err := writeText(e, out, []byte(k.PEM)); err != nil {
			return err
		}
	} else {
		fmt.Fprint(e.stdout, k.PEM)
	}
	fmt.Fprintf(e.stderr, "%s: fingerprint %s\n", s.URI(), k.Fingerprint)
	return nil
}

// noAuthHint says how to give a TPM key its auth value.
func noAuthHint(err error) error {
	if errors.Is(err, signer.ErrNoAuth) {
		return withHint(err, "add ;pin-source=file:PIN_FILE to the tpm: URI (chmod 600), or set AUGEN_TPM_PIN; --no-auth makes a key without one")
	}
	return err
}

func keyPubkey(e *env, args []string) error {
	fs := newFlags(e, "key pubkey", keyPubkeyUsage)
	out := fs.StringP("output", "o", "", "write the PEM to `path` instead of stdout")
	asJSON := fs.Bool("json", false, "print URI, fingerprint, size and PEM as JSON")
	insecure := fs.Bool("allow-insecure-key-file", false, "accept key files that others can read")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return withHint(usagef("expected one key URI"), `run "augen key pubkey --help"`)
	}
	if path, ok := strings.CutPrefix(fs.Arg(0), "file:"); ok {
		if pub, err := pubkey.Load(path); err == nil {
			return printPublic(e, fs.Arg(0), pub, *out, *asJSON)
		}
	}
	// A token's public key object is read without logging in: no PIN.
	if pub, ok, err := signer.PublicKey(e.ctx, fs.Arg(0)); err != nil {
		return err
	} else if ok {
		return printPublic(e, fs.Arg(0), pub, *out, *asJSON)
	}
	s, err := openKey(e, fs.Arg(0), signerOptions(e, *insecure))
	if err != nil {
		return err
	}
	defer s.Close()
	return printKey(e, s, *out, *asJSON)
}

// printPublic prints a public key given as a file, as printKey does.
func printPublic(e *env, uri string, pub crypto.PublicKey, out string, asJSON bool) error {
	b, err := pubkey.PEM(pub)
	if err != nil {
		return err
	}
	fp, err := pubkey.Fingerprint(pub)
	if err != nil {
		return err
	}
	k := keyJSON{URI: uri, Fingerprint: fp, PEM: string(b)}
	if r, ok := pub.(*rsa.PublicKey); ok {
		k.Bits = r.N.BitLen()
	}
	if asJSON {
		return writeJSON(e.stdout, k)
	}
	if out != "" {
		if err := writeText(e, out, b); err != nil {
			return err
		}
	} else {
		fmt.Fprint(e.stdout, k.PEM)
	}
	fmt.Fprintf(e.stderr, "%s: a public key, fingerprint %s\n", uri, fp)
	return nil
}

const keyGenerateUsage = `Usage: augen key generate URI [--bits 2048] [--no-auth] [-o PUB.pem] [--json]

Creates a new RSA signing key inside a PKCS#11 token or a TPM, where it
stays: PKCS#11 keys are sensitive and not extractable; TPM keys never leave
the TPM (tpm:key=PATH writes a key file only that TPM can load;
tpm:handle=0x81… persists the key at that handle). Prints its public key.

A TPM key gets an auth value (its PIN): from ;pin-source=file:… in the URI
(a file only its owner can read), $AUGEN_TPM_PIN, or a prompt on the
terminal, entered twice. Without one, anyone who can copy the key file and
reach the TPM can sign with it, so a key is made without one only with
--no-auth, and --official signing refuses such a key.

A TPM-held key dies with its TPM (a clear, a new board). To keep a backup,
generate the key offline and "augen key import --tpm" it into each TPM.

Examples:
  augen key generate 'pkcs11:token=release;object=payload-2026;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so'
  augen key generate 'tpm:key=/etc/augen/payload.tpmkey;pin-source=file:/etc/augen/payload.pin'
`

func keyGenerate(e *env, args []string) error {
	fs := newFlags(e, "key generate", keyGenerateUsage)
	bits := fs.Int("bits", 2048, "RSA key size (2048 is what every client verifies)")
	noAuth := fs.Bool("no-auth", false, "make a TPM key WITHOUT an auth value (anyone with the key file and the TPM can sign; --official refuses it)")
	out := fs.StringP("output", "o", "", "write the public key PEM to `path`")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return withHint(usagef("expected one key URI"), `run "augen key generate --help"`)
	}
	opts := signerOptions(e, false)
	opts.NoAuth = *noAuth
	s, err := signer.Generate(e.ctx, fs.Arg(0), *bits, opts)
	if err != nil {
		return noAuthHint(err)
	}
	defer s.Close()
	if *noAuth {
		logTo(e).Warn(s.URI() + " was made WITHOUT an auth value (--no-auth): anyone who can copy it and reach the TPM can sign with it")
	}
	return printKey(e, s, *out, *asJSON)
}

const keyImportUsage = `Usage: augen key import --tpm URI --from KEY.pem [--no-auth] [-o PUB.pem] [--json]

Imports an existing RSA key (PKCS#1 or PKCS#8 PEM, e.g. restored from an
offline backup) into a TPM with TPM2_Import, wrapped to the TPM's storage
root key, with its scheme pinned to RSASSA-SHA256. The URI says where the
imported key goes: tpm:key=PATH (a key file) or tpm:handle=0x81… . Then
destroy the PEM copy on this machine.

Example:
  augen key import --tpm tpm:key=/var/lib/augen/payload.tpmkey --from payload-key.pem -o payload.pub.pem
`

func keyImport(e *env, args []string) error {
	fs := newFlags(e, "key import", keyImportUsage)
	tpmURI := fs.String("tpm", "", "the tpm: `URI` to import into")
	noAuth := fs.Bool("no-auth", false, "import the key WITHOUT an auth value (anyone with the key file and the TPM can sign; --official refuses it)")
	from := fs.String("from", "", "the private key `PEM` to import")
	out := fs.StringP("output", "o", "", "write the public key PEM to `path`")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	insecure := fs.Bool("allow-insecure-key-file", false, "accept a key file that others can read")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *tpmURI == "" || *from == "" {
		return withHint(usagef("--tpm and --from are required"), `run "augen key import --help"`)
	}
	src, err := signer.Open(e.ctx, "file:"+*from, signerOptions(e, *insecure))
	if err != nil {
		return err
	}
	src.Close()
	key, err := readRSAKey(*from)
	if err != nil {
		return err
	}
	opts := signerOptions(e, false)
	opts.NoAuth = *noAuth
	s, err := signer.ImportTPM(e.ctx, *tpmURI, key, opts)
	if err != nil {
		return noAuthHint(err)
	}
	defer s.Close()
	if *noAuth {
		logTo(e).Warn(s.URI() + " was imported WITHOUT an auth value (--no-auth): anyone who can copy it and reach the TPM can sign with it")
	}
	return printKey(e, s, *out, *asJSON)
}

func readRSAKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New(path + ": not an RSA key")
	}
	return rk, nil
}

const keyListUsage = `Usage: augen key list pkcs11:URI [--json]

Lists the private keys in the token the URI names (log-in required), each
with the URI that opens it, its size and fingerprint.

Example:
  augen key list 'pkcs11:token=release'
`

func keyList(e *env, args []string) error {
	fs := newFlags(e, "key list", keyListUsage)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return withHint(usagef("expected one pkcs11: URI"), `run "augen key list --help"`)
	}
	keys, err := signer.List(e.ctx, fs.Arg(0), signerOptions(e, false))
	if err != nil {
		return err
	}
	if *asJSON {
		if keys == nil {
			keys = []signer.KeyInfo{}
		}
		return writeJSON(e.stdout, keys)
	}
	for _, k := range keys {
		fmt.Fprintf(e.stdout, "%s\t%s-%d\t%s\n", k.URI, k.Type, k.Bits, k.Fingerprint)
	}
	return nil
}
