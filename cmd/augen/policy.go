package main

import (
	"crypto"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"github.com/augen-project/augen/pubkey"
	"github.com/augen-project/augen/verify"
)

const policyInitUsage = `Usage: augen policy init --bundle-key [NAME=]KEY... --payload-key [NAME=]KEY... [--threshold K]
                        [--channel NAME]... [--secure-boot-cert db.crt]... [-o policy.json]

Writes a starting trust policy (policy.json) so that nobody writes it by
hand: the bundle keys and how many of them must sign a release (k of n),
the payload keys clients have baked in, the boards, and per channel how
many bundle keys must have signed: dev-channel, the bastion's everyday
target, any one; the channels a stock Nebraska and Flatcar have (alpha,
beta, stable, lts, edge) and each --channel, the threshold. Edit
"channels" to restrict a channel to some keys.

When a command names a channel (verify --channel, push), that channel's
rule is the one applied, in place of the k of n: with --threshold 2, a
bundle signed by one officer verifies for dev-channel and is refused for
stable. Without a channel, verify applies the k of n.

--secure-boot-cert (repeatable) records the certificates a release's
kernel must be signed with for Secure Boot (a leaf, or a CA that
certifies the signer): verify and push then refuse a release whose kernel
is unsigned or signed by another key.

Each key may carry a name (NAME=KEY: "alice=alice.pub.pem",
"payload-2026=pkcs11:…"), which verify, push, bundle sign and bundle
inspect print next to its fingerprint; the fingerprint is what is checked.
KEY is a public key PEM file or a key URI (file:, pkcs11:, tpm:).

Example:
  augen policy init --bundle-key alice=release-officer.pub.pem \
      --payload-key payload-2026=official-v2.pub.pem -o policy.json
`

func policyInit(e *env, args []string) error {
	fs := newFlags(e, "policy init", policyInitUsage)
	var bundleKeys, payloadKeys []string
	fs.StringArrayVar(&bundleKeys, "bundle-key", nil, "a key that may sign bundles (PEM `file` or URI; repeatable)")
	fs.StringArrayVar(&payloadKeys, "payload-key", nil, "a key clients trust for payloads (PEM `file` or URI; repeatable)")
	threshold := fs.Int("threshold", 1, "how many bundle keys must sign (k of n)")
	var channels []string
	fs.StringArrayVar(&channels, "channel", nil, "another `channel` to allow, at the threshold (repeatable)")
	var sbCerts []string
	fs.StringArrayVar(&sbCerts, "secure-boot-cert", nil, "the kernel must be signed for Secure Boot by this certificate or one it certifies (a PEM `file`; repeatable)")
	out := fs.StringP("output", "o", "-", "write the policy to `path`")
	if err := parse(fs, args); err != nil {
		return err
	}
	certs, err := readCertificates(sbCerts)
	if err != nil {
		return err
	}
	if fs.NArg() != 0 || len(bundleKeys) == 0 || len(payloadKeys) == 0 {
		return withHint(usagef("give at least one --bundle-key and one --payload-key"), `run "augen policy init --help"`)
	}
	names := map[string]string{}
	load := func(list []string) ([]crypto.PublicKey, error) { return loadNamedKeys(e, list, names) }
	bk, err := load(bundleKeys)
	if err != nil {
		return err
	}
	pk, err := load(payloadKeys)
	if err != nil {
		return err
	}
	p, err := verify.NewPolicy(bk, pk, *threshold, channels...)
	if err != nil {
		return usagef("%v", err)
	}
	for _, keys := range [][]verify.Key{p.BundleKeys, p.PayloadKeys} {
		for i := range keys {
			keys[i].Name = names[keys[i].ID]
		}
	}
	for _, c := range certs {
		p.SecureBootCerts = append(p.SecureBootCerts, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	}
	if _, err := verify.NewTrust(*p); err != nil {
		return usagef("%v", err)
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := writeText(e, *out, append(b, '\n')); err != nil {
		return err
	}
	if *out != "-" {
		fmt.Fprintf(e.stderr, "wrote %s: %d bundle key(s), %d payload key(s), threshold %d\n", *out, len(p.BundleKeys), len(p.PayloadKeys), p.Threshold)
	}
	return nil
}

// loadNamedKeys reads policy init's [NAME=]KEY arguments, recording each
// name by the key's fingerprint in names (a key named twice differently is
// refused).
func loadNamedKeys(e *env, list []string, names map[string]string) ([]crypto.PublicKey, error) {
	var pubs []crypto.PublicKey
	for _, k := range list {
		name, k := splitKeyName(k)
		p, err := publicKeyOf(e, k)
		if err != nil {
			return nil, err
		}
		if name != "" {
			if err := verify.CheckKeyName(name); err != nil {
				return nil, usagef("%v", err)
			}
			fp, err := pubkey.Fingerprint(p)
			if err != nil {
				return nil, err
			}
			if other := names[fp]; other != "" && other != name {
				return nil, usagef("key %s is named both %q and %q", fp, other, name)
			}
			names[fp] = name
		}
		pubs = append(pubs, p)
	}
	return pubs, nil
}

// publicKeyOf reads a PEM public key file, or opens a key URI for its
// public half.
func publicKeyOf(e *env, k string) (crypto.PublicKey, error) {
	for _, scheme := range []string{"file:", "pkcs11:", "tpm:"} {
		if strings.HasPrefix(k, scheme) {
			s, err := openKey(e, k, signerOptions(e, false))
			if err != nil {
				return nil, err
			}
			defer s.Close()
			return s.Public(), nil
		}
	}
	return pubkey.Load(k)
}

func loadPolicy(path string) (*verify.Trust, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := verify.ParsePolicy(f)
	if err != nil {
		return nil, withHint(err, `make one with "augen policy init"`)
	}
	return t, nil
}

// splitKeyName takes "NAME=KEY" apart: NAME is a name when it holds no
// '/', ':' or '.' (a file name, a URI scheme or path) and KEY is not an
// existing file named with '=' in it.
func splitKeyName(v string) (name, key string) {
	n, k, ok := strings.Cut(v, "=")
	if !ok || n == "" || strings.ContainsAny(n, "/:.") {
		return "", v
	}
	if _, err := os.Stat(v); err == nil {
		return "", v
	}
	return n, k
}

// optionalPolicy loads a policy if a path is given (nil otherwise: keys
// are then shown by fingerprint alone).
func optionalPolicy(path string) (*verify.Trust, error) {
	if path == "" {
		return nil, nil
	}
	return loadPolicy(path)
}
