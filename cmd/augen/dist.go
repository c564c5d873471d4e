package main

import (
	"crypto"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/augen-project/augen/dist"
)

const distSBOMUsage = `Usage: augen dist sbom --version V BINARY... -o sbom.spdx.json

Writes an SPDX 2.3 software bill of materials of augen's own release from
the binaries' embedded build information: each binary (SHA-256, Go
version, target) and every module built into it, with its go.sum hash.
SOURCE_DATE_EPOCH fixes the creation time (scripts/release.sh sets it to
the commit's time), so the same binaries give the same bytes.

Example:
  augen dist sbom --version 1.4.0 dist/augen-linux-amd64 dist/augen-linux-arm64 -o dist/sbom.spdx.json
`

func distSBOM(e *env, args []string) error {
	fs := newFlags(e, "dist sbom", distSBOMUsage)
	ver := fs.String("version", "", "the release `version`")
	out := fs.StringP("output", "o", "", "write the SBOM to `path`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 || *ver == "" || *out == "" {
		return withHint(usagef("expected --version, -o and at least one binary"), `run "augen dist sbom --help"`)
	}
	bins, err := readBinaries(fs.Args())
	if err != nil {
		return err
	}
	created, err := buildTime()
	if err != nil {
		return err
	}
	b, err := dist.SBOM(*ver, bins, created)
	if err != nil {
		return err
	}
	return writeBytes(e, *out, append(b, '\n'))
}

func readBinaries(paths []string) ([]*dist.Binary, error) {
	var bins []*dist.Binary
	for _, p := range paths {
		b, err := dist.ReadBinary(p)
		if err != nil {
			return nil, usagef("%v (not a Go binary?)", err)
		}
		bins = append(bins, b)
	}
	return bins, nil
}

const distProvenanceUsage = `Usage: augen dist provenance --version V --revision COMMIT --binary B... --key URI... FILE... -o provenance.intoto.json

Writes the provenance of augen's own release: an in-toto statement (SLSA
provenance v1) whose subjects are the release's files (the binaries, and
the files beside them such as SHA256SUMS and the SBOM), naming the source
revision, the Go toolchain and every module built in (read from each
--binary), in a DSSE envelope signed with each --key (any key URI augen
opens: file:, pkcs11:, tpm:) by the same code that signs release bundles.
"augen dist verify" checks it.

Example:
  augen dist provenance --version 1.4.0 --revision "$(git rev-parse HEAD)" \
      --binary dist/augen-linux-amd64 --binary dist/augen-linux-arm64 \
      --key 'pkcs11:object=augen-release;type=private' \
      dist/augen-linux-amd64 dist/augen-linux-arm64 dist/SHA256SUMS dist/sbom.spdx.json \
      -o dist/provenance.intoto.json
`

func distProvenance(e *env, args []string) error {
	fs := newFlags(e, "dist provenance", distProvenanceUsage)
	ver := fs.String("version", "", "the release `version`")
	rev := fs.String("revision", "", "the source `commit` the release was built from")
	var binaries, keys []string
	fs.StringArrayVar(&binaries, "binary", nil, "a release binary whose build information names the modules built in (repeatable)")
	fs.StringArrayVar(&keys, "key", nil, "sign with this key `URI` (repeatable)")
	insecure := fs.Bool("allow-insecure-key-file", false, "accept key files that others can read")
	out := fs.StringP("output", "o", "", "write the signed provenance to `path`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 || *ver == "" || *rev == "" || *out == "" || len(keys) == 0 || len(binaries) == 0 {
		return withHint(usagef("expected --version, --revision, --binary, --key, -o and the release's files"), `run "augen dist provenance --help"`)
	}
	for _, f := range fs.Args() {
		if err := regularFile(f, "file"); err != nil {
			return err
		}
	}
	bins, err := readBinaries(binaries)
	if err != nil {
		return err
	}
	created, err := buildTime()
	if err != nil {
		return err
	}
	st, err := dist.NewStatement(*ver, *rev, fs.Args(), bins, created)
	if err != nil {
		return err
	}
	opened, err := openBundleKeys(e, keys, *insecure, false)
	if err != nil {
		return err
	}
	defer closeKeys(opened)
	signers := make([]crypto.Signer, len(opened))
	for i, k := range opened {
		signers[i] = k
	}
	b, err := st.Sign(signers)
	if err != nil {
		return err
	}
	if err := writeBytes(e, *out, append(b, '\n')); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "wrote %s: %d file(s), %d dependencies, signed by %d key(s)\n", *out, len(st.Subject), len(st.Predicate.BuildDefinition.ResolvedDependencies), len(signers))
	return nil
}

const distVerifyUsage = `Usage: augen dist verify provenance.intoto.json --policy policy.json [--dir DIR]

Checks a downloaded augen release before it is used: the provenance's
DSSE signatures (at least the policy's threshold of its bundle keys; a
trusted key's signature that does not verify fails it), then every file it
names against the file of that name in DIR (default: the provenance's
folder). One changed byte of a binary fails it. Exit status 3 when it
does not verify.

Example:
  augen dist verify dist/provenance.intoto.json --policy augen-release-policy.json
`

func distVerify(e *env, args []string) error {
	fs := newFlags(e, "dist verify", distVerifyUsage)
	policy := fs.String("policy", "", "the trust policy `file` (its bundle keys sign augen's releases)")
	dir := fs.String("dir", "", "the `folder` holding the release's files (default: the provenance's)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *policy == "" {
		return withHint(usagef("expected one provenance file and --policy"), `run "augen dist verify --help"`)
	}
	trust, err := loadPolicy(*policy)
	if err != nil {
		return err
	}
	b, err := readSmallFile(fs.Arg(0), dist.MaxEnvelope)
	if err != nil {
		return usagef("%v", err)
	}
	if *dir == "" {
		*dir = filepath.Dir(fs.Arg(0))
	}
	v, err := dist.Verify(b, trust.BundleKeys(), trust.Threshold, *dir)
	if err != nil {
		return err
	}
	params := v.Statement.Predicate.BuildDefinition.ExternalParameters
	fmt.Fprintf(e.stdout, "%s: OK: augen %s from %s, signed by %s\n", fs.Arg(0), params["version"], params["source"], trust.Labels(v.SignedBy))
	fmt.Fprintf(e.stdout, "  files: %s\n", strings.Join(v.Files, ", "))
	return nil
}
