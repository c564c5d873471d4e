package main

import (
	"fmt"
	"os"

	"github.com/augen-project/augen/payload"
)

const payloadDigestUsage = `Usage: augen payload digest UNSIGNED --pubkey PUB.pem... -o PREPARED --digest-out DIGEST
       augen payload digest UNSIGNED --signature-size BYTES... -o PREPARED --digest-out DIGEST

Two-pass signing, step 1, for keys that live on another machine: reserves
room in an unsigned payload for one signature per key (sizes taken from the
public keys, or given in bytes), writes that prepared payload, and writes the
32-byte SHA-256 digest the keys must sign (raw bytes; PKCS#1 v1.5 over
SHA-256, e.g. "openssl pkeyutl -sign -pkeyopt digest:sha256").

List the keys in the order the signatures will be attached: the LAST is the
one update_engine checks. Step 2 is "augen payload attach".

Example:
  augen payload digest update.unsigned.gz --pubkey official-v2.pub.pem \
      -o update.prepared.gz --digest-out update.digest
`

func payloadDigest(e *env, args []string) error {
	fs := newFlags(e, "payload digest", payloadDigestUsage)
	var pubPaths []string
	fs.StringArrayVar(&pubPaths, "pubkey", nil, "public key `PEM` of a signer, in signing order (repeatable)")
	sizes := fs.IntSlice("signature-size", nil, "reserve a signature of `bytes` (repeatable; 256 for RSA-2048)")
	out := fs.StringP("output", "o", "", "write the prepared payload to `path`")
	digestOut := fs.String("digest-out", "", "write the 32-byte digest to `path`")
	asJSON := fs.Bool("json", false, "print what was written as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return withHint(usagef("expected one unsigned payload, got %d arguments", fs.NArg()), `run "augen payload digest --help"`)
	}
	if *out == "" || *digestOut == "" {
		return usagef("-o and --digest-out are required")
	}
	if (len(pubPaths) == 0) == (len(*sizes) == 0) {
		return usagef("give either --pubkey (one per signer) or --signature-size, not both or neither")
	}
	sz := *sizes
	pubs, err := loadPubkeys(pubPaths)
	if err != nil {
		return err
	}
	for i, p := range pubs {
		n, err := payload.SignatureSize(p)
		if err != nil {
			return fmt.Errorf("%s: %w", pubPaths[i], err)
		}
		sz = append(sz, n)
	}
	in, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer in.Close()
	f, err := createOutput(e, *out)
	if err != nil {
		return err
	}
	defer f.Abort()
	res, err := payload.Finish(f, in, sz, nil)
	if err != nil {
		return err
	}
	d, err := createOutput(e, *digestOut)
	if err != nil {
		return err
	}
	defer d.Abort()
	if _, err := d.Write(res.Digest); err != nil {
		return err
	}
	if err := f.Commit(); err != nil {
		return err
	}
	if err := d.Commit(); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "prepared %s for %d signature(s); sign the digest in %s (sha256 %x)\n", *out, len(sz), *digestOut, res.Digest)
	if *asJSON {
		return writeJSON(e.stdout, struct {
			Output     string `json:"output"`
			DigestFile string `json:"digest_file"`
			Digest     string `json:"digest_hex"`
			Signatures int    `json:"signatures"`
		}{*out, *digestOut, fmt.Sprintf("%x", res.Digest), len(sz)})
	}
	return nil
}
