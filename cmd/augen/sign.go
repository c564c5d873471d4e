package main

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
)

const signUsage = `Usage: augen sign --key URI --digest DIGEST -o SIG

Signs the 32-byte digest made by "augen payload digest" (RSA PKCS#1 v1.5
over SHA-256, the scheme update_engine verifies) with one key, for signing
ceremonies on a machine other than the one that built the payload. The
signature is verified against the key's public half before it is written.
Attach it with "augen payload attach".

Example:
  augen sign --key 'pkcs11:object=10;type=private' --digest update.digest -o update.sig
`

func signCmd(e *env, args []string) error {
	fs := newFlags(e, "sign", signUsage)
	keyURI := fs.String("key", "", "the key `URI`")
	digestPath := fs.String("digest", "", "the 32-byte digest `file`")
	out := fs.StringP("output", "o", "", "write the raw signature to `path`")
	asJSON := fs.Bool("json", false, "print what was signed as JSON")
	official := fs.Bool("official", false, "refuse file: keys (official signing uses hardware keys)")
	insecure := fs.Bool("allow-insecure-key-file", false, "accept key files that others can read")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *keyURI == "" || *digestPath == "" || *out == "" {
		return withHint(usagef("--key, --digest and -o are required"), `run "augen sign --help"`)
	}
	if err := checkOfficial(*official, []string{*keyURI}, *insecure); err != nil {
		return err
	}
	st, err := os.Stat(*digestPath)
	if err != nil {
		return err
	}
	if st.Size() != sha256.Size {
		return usagef("%s is %d bytes; a digest from \"augen payload digest\" is %d", *digestPath, st.Size(), sha256.Size)
	}
	digest, err := os.ReadFile(*digestPath)
	if err != nil {
		return err
	}
	s, err := openKey(e, *keyURI, keyOptions(e, *insecure, *official))
	if err != nil {
		return err
	}
	defer s.Close()
	sig, err := s.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		return err
	}
	if err := writeBytes(e, *out, sig); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "signed %x with %s (%s)\n", digest, s.URI(), s.Fingerprint())
	if *asJSON {
		return writeJSON(e.stdout, struct {
			Output      string `json:"output"`
			Digest      string `json:"digest_hex"`
			Key         string `json:"key"`
			Fingerprint string `json:"fingerprint"`
		}{*out, fmt.Sprintf("%x", digest), s.URI(), s.Fingerprint()})
	}
	return nil
}
