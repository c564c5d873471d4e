package main

import (
	"crypto/rsa"
	"fmt"
	"io"
	"os"

	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/pubkey"
)

const payloadAttachUsage = `Usage: augen payload attach PREPARED --signature SIG --pubkey PUB.pem [--signature SIG --pubkey PUB.pem]... -o SIGNED

Two-pass signing, step 2: attaches raw signatures of the digest made by
"augen payload digest", in the order given (the LAST is the one update_engine
checks). Each --signature is verified against the --pubkey at the same
position before anything is written, and must have exactly the size that was
reserved. PREPARED may also be an unsigned payload from update_engine's
delta_generator; room is then reserved from the signatures' sizes.

Example:
  augen payload attach update.prepared.gz --signature update.sig \
      --pubkey official-v2.pub.pem -o flatcar_production_update.gz
`

// readSignatures reads attach's raw signatures (at most 4 KiB each) and
// the RSA public key that made each.
func readSignatures(sigPaths, pubPaths []string) ([][]byte, []*rsa.PublicKey, error) {
	var sigs [][]byte
	var keys []*rsa.PublicKey
	for i, p := range sigPaths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, nil, err
		}
		if st.Size() > 4096 {
			return nil, nil, fmt.Errorf("signature %s is %d bytes: not a raw signature", p, st.Size())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, err
		}
		k, err := pubkey.Load(pubPaths[i])
		if err != nil {
			return nil, nil, err
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, nil, fmt.Errorf("%s: %T keys cannot sign payloads: update_engine verifies RSA only", pubPaths[i], k)
		}
		sigs = append(sigs, b)
		keys = append(keys, rk)
	}
	return sigs, keys, nil
}

func payloadAttach(e *env, args []string) error {
	fs := newFlags(e, "payload attach", payloadAttachUsage)
	var sigPaths, pubPaths []string
	fs.StringArrayVar(&sigPaths, "signature", nil, "a raw signature `file` (repeatable, in order)")
	fs.StringArrayVar(&pubPaths, "pubkey", nil, "the public key `PEM` that made the signature at the same position")
	out := fs.StringP("output", "o", "", "write the signed payload to `path`")
	asJSON := fs.Bool("json", false, "print what was written as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return withHint(usagef("expected one prepared payload, got %d arguments", fs.NArg()), `run "augen payload attach --help"`)
	}
	if *out == "" {
		return usagef("-o is required")
	}
	if len(sigPaths) == 0 || len(sigPaths) != len(pubPaths) {
		return withHint(usagef("give one --pubkey for each --signature (got %d signatures, %d keys)", len(sigPaths), len(pubPaths)),
			"every signature is checked before it is attached")
	}
	sigs, keys, err := readSignatures(sigPaths, pubPaths)
	if err != nil {
		return err
	}
	in, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer in.Close()
	sizes := make([]int, len(sigs))
	for i := range sigs {
		sizes[i] = len(sigs[i])
	}
	sign := func(digest []byte) ([][]byte, error) {
		for i, s := range sigs {
			if err := payload.VerifyDigest(keys[i], digest, s); err != nil {
				return nil, withHint(fmt.Errorf("signature %s does not verify with %s over this payload's digest %x: %v", sigPaths[i], pubPaths[i], digest, err),
					"was it made over the digest from \"augen payload digest\" for this very file, with the matching key?")
			}
		}
		return sigs, nil
	}
	var res *payload.Result
	err = writeOutput(e, *out, func(w io.Writer) error {
		res, err = payload.Finish(w, in, sizes, sign)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "attached %d signature(s) to %s (size %d, sha256 %s; omaha sha256 %s (base64, as Omaha sends it))\n", len(sigs), *out, res.Hashes.Size, res.Hashes.HexSHA256(), res.Hashes.OmahaSHA256())
	if *asJSON {
		return writeJSON(e.stdout, struct {
			Output       string `json:"output"`
			Signatures   int    `json:"signatures"`
			Size         int64  `json:"size"`
			OmahaSHA256  string `json:"sha256_base64"`
			SignedSHA256 string `json:"signed_hash_sha256"`
		}{*out, len(sigs), res.Hashes.Size, res.Hashes.OmahaSHA256(), fmt.Sprintf("%x", res.Digest)})
	}
	return nil
}
