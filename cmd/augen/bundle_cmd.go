package main

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	toolkit "github.com/augen-project/augen"
	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/filekind"
	"github.com/augen-project/augen/signer"
)

const bundleCreateUsage = `Usage: augen bundle create --version V --board amd64-usr --payload UPDATE.gz [--delta-from V0=DELTA.gz]...
                           [--extra oem-NAME.gz]... --payload-key PUB... --key URI... -o release.tar

Makes a release bundle from payloads built already: a deterministic tar of
the payloads and an in-toto release statement (versions, board, every
payload's size and Omaha hashes, partition and kernel hashes, the payload
keys whose signatures verify), signed in a DSSE envelope by each --key.
Member times come from SOURCE_DATE_EPOCH (or are the time of the build,
recorded once), so the same inputs and keys give the same bytes.

Example:
  augen bundle create --version 4459.2.1 --board amd64-usr \
      --payload flatcar_production_update.gz --payload-key official-v2.pub.pem \
      --key 'pkcs11:object=20;type=private' -o release.tar
`

// bundleFlags are shared by bundle create and release.
type bundleFlags struct {
	version, board, appID, versionFile *string
	// requiresVersion is --requires-version: the oldest version that may
	// update to the release directly.
	requiresVersion *string
	keys            []string
	// official is --official: hardware keys with an auth value only.
	official bool
	// secureBoot is the kernel's checked Secure Boot signature.
	secureBoot *bundle.SecureBoot
}

const secureBootCertUsage = "the kernel must be signed for Secure Boot by this certificate or one it certifies (a PEM `file`: a leaf or a CA; repeatable); the signer is recorded in the statement"

// readCertificates reads PEM certificate files (each may hold several).
func readCertificates(paths []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, p := range paths {
		b, err := readSmallFile(p, 1<<20)
		if err != nil {
			return nil, usagef("--secure-boot-cert: %v", err)
		}
		n := 0
		for {
			var blk *pem.Block
			blk, b = pem.Decode(b)
			if blk == nil {
				break
			}
			if blk.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, usagef("--secure-boot-cert %s: %v", p, err)
			}
			out, n = append(out, c), n+1
		}
		if n == 0 {
			return nil, withHint(usagef("--secure-boot-cert %s holds no PEM certificate", p), "give the certificate sbsign signed with (db.crt), in PEM: openssl x509 -inform DER -in db.der -out db.crt")
		}
	}
	return out, nil
}

const requiresVersionUsage = "the oldest `version` that may update to this release directly; push then refuses a channel whose floors let an older machine be offered it"

// resolveVersion takes --version, --version-file, or both if they agree.
func (bf *bundleFlags) resolveVersion() error {
	if *bf.versionFile == "" {
		if *bf.version == "" {
			return usagef("give --version or --version-file")
		}
		return bf.checkRequires()
	}
	b, err := os.ReadFile(*bf.versionFile)
	if err != nil {
		return err
	}
	v, err := bundle.VersionFromFile(b)
	if err != nil {
		return err
	}
	if *bf.version != "" && *bf.version != v {
		return usagef("--version %s but %s says %s", *bf.version, *bf.versionFile, v)
	}
	*bf.version = v
	return bf.checkRequires()
}

// checkRequires refuses a --requires-version that is not an older
// MAJOR.MINOR.PATCH version.
func (bf *bundleFlags) checkRequires() error {
	if bf.requiresVersion == nil || *bf.requiresVersion == "" {
		return nil
	}
	if c, ok := bundle.CompareVersions(*bf.requiresVersion, *bf.version); !ok || c >= 0 {
		return usagef("--requires-version %q: want a MAJOR.MINOR.PATCH version older than %s", *bf.requiresVersion, *bf.version)
	}
	return nil
}

func bundleCreate(e *env, args []string) error {
	fs := newFlags(e, "bundle create", bundleCreateUsage)
	bf := bundleFlags{version: fs.String("version", "", "the release `version` (MAJOR.MINOR.PATCH)"),
		board:           fs.String("board", "", "the `board` (amd64-usr or arm64-usr); default: the full payload's, from its kernel's architecture, which a --board must not contradict"),
		appID:           fs.String("app-id", bundle.FlatcarAppID, "the Omaha app `id`"),
		versionFile:     fs.String("version-file", "", "read the version from a seed-style version.txt `file` (FLATCAR_BUILD/BRANCH/PATCH)"),
		requiresVersion: fs.String("requires-version", "", requiresVersionUsage)}
	full := fs.String("payload", "", "the full payload `file` (flatcar_production_update.gz)")
	var deltas, extras, payloadKeys []string
	fs.StringArrayVar(&deltas, "delta-from", nil, "a delta payload from an older version, as `VERSION=FILE` (repeatable)")
	fs.StringArrayVar(&extras, "extra", nil, "an extra payload `file` (oem-*.gz, flatcar-*.gz; repeatable)")
	fs.StringArrayVar(&payloadKeys, "payload-key", nil, "a public key (PEM `file` or URI) that may have signed the payloads")
	fs.StringArrayVar(&bf.keys, "key", nil, "sign the bundle with this key `URI` (repeatable)")
	var sbCerts []string
	fs.StringArrayVar(&sbCerts, "secure-boot-cert", nil, secureBootCertUsage)
	insecure := fs.Bool("allow-insecure-key-file", false, "accept key files that others can read")
	fs.BoolVar(&bf.official, "official", false, officialUsage+"; the kernel must be signed for Secure Boot")
	asJSON := fs.Bool("json", false, "print what was written as JSON")
	out := fs.StringP("output", "o", "", "write the bundle to `path`")
	if err := parse(fs, args); err != nil {
		return err
	}
	certs, err := readCertificates(sbCerts)
	if err != nil {
		return err
	}
	if err := checkOfficial(bf.official, bf.keys, *insecure); err != nil {
		return err
	}
	if fs.NArg() != 0 || *full == "" || *out == "" {
		return withHint(usagef("--payload and -o are required"), `run "augen bundle create --help"`)
	}
	if err := bf.resolveVersion(); err != nil {
		return err
	}
	files := []bundle.PayloadFile{{Path: *full, Name: "flatcar_production_update.gz", Kind: bundle.KindFull}}
	for _, d := range deltas {
		v, path, ok := strings.Cut(d, "=")
		if !ok {
			return usagef("--delta-from %q: want VERSION=FILE", d)
		}
		files = append(files, bundle.PayloadFile{Path: path, Name: "delta-from-" + v + ".gz", Kind: bundle.KindDelta, FromVersion: v})
	}
	for _, x := range extras {
		files = append(files, bundle.PayloadFile{Path: x, Name: filepath.Base(x), Kind: bundle.KindExtra})
	}
	bf.secureBoot, err = checkBeforeSigning(e, files, payloadKeys, *bf.version, bf.board, secureBootCheck{certs, bf.official})
	if err != nil {
		return err
	}
	st, err := writeBundle(e, bf, files, payloadKeys, nil, *insecure, *out)
	if err != nil || !*asJSON {
		return err
	}
	return writeJSON(e.stdout, bundleJSON(*out, st))
}

// writeBundle signs and writes a bundle.
func writeBundle(e *env, bf bundleFlags, files []bundle.PayloadFile, payloadKeys []string, input *bundle.Digests, insecure bool, out string) (*bundle.Statement, error) {
	if len(bf.keys) == 0 {
		return nil, withHint(usagef("no --key to sign the bundle with"), "a bundle nobody signed cannot be verified")
	}
	var pubs []crypto.PublicKey
	for _, k := range payloadKeys {
		p, err := publicKeyOf(e, k)
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, p)
	}
	keys, err := openBundleKeys(e, bf.keys, insecure, bf.official)
	if err != nil {
		return nil, err
	}
	defer closeKeys(keys)
	signers := make([]crypto.Signer, len(keys))
	for i, k := range keys {
		signers[i] = k
	}
	mtime, err := buildTime()
	if err != nil {
		return nil, err
	}
	f, err := createOutput(e, out)
	if err != nil {
		return nil, err
	}
	defer f.Abort()
	st, err := bundle.Build(f, bundle.BuildOptions{AppID: *bf.appID, Version: *bf.version, Board: *bf.board, RequiresVersion: *bf.requiresVersion, Payloads: files,
		PayloadKeys: pubs, InputImage: input, SecureBoot: bf.secureBoot, Augen: version, MTime: mtime, Signers: signers})
	if err != nil {
		return nil, err
	}
	if err := f.Commit(); err != nil {
		return nil, err
	}
	fmt.Fprintf(e.stderr, "wrote %s: %s %s, %d payload(s), signed by %d key(s)\n", out, st.Predicate.Board, st.Predicate.Version, len(st.Predicate.Payloads), len(keys))
	return st, nil
}

// bundleResult is the --json output of release and bundle create.
type bundleResult struct {
	Output   string                `json:"output"`
	Board    string                `json:"board"`
	Version  string                `json:"version"`
	AppID    string                `json:"app_id"`
	Payloads []bundle.PayloadEntry `json:"payloads"`
	Keys     []string              `json:"payload_keys,omitempty"`
}

func bundleJSON(out string, st *bundle.Statement) bundleResult {
	return bundleResult{Output: out, Board: st.Predicate.Board, Version: st.Predicate.Version, AppID: st.Predicate.AppID, Payloads: st.Predicate.Payloads}
}

func openBundleKeys(e *env, uris []string, insecure, official bool) ([]signer.Signer, error) {
	if err := checkOfficial(official, uris, insecure); err != nil {
		return nil, err
	}
	var keys []signer.Signer
	for _, u := range uris {
		k, err := openKey(e, u, keyOptions(e, insecure, official))
		if err != nil {
			closeKeys(keys)
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// buildTime is SOURCE_DATE_EPOCH, or now.
func buildTime() (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, usagef("SOURCE_DATE_EPOCH=%q is not a number of seconds", s)
		}
		return time.Unix(n, 0), nil
	}
	return time.Now(), nil
}

const bundleInspectUsage = `Usage: augen bundle inspect release.tar [--policy policy.json] [--json]

Shows a bundle's members, its release statement and who signed it, WITHOUT
checking anything: use "augen verify" for that. With --policy, signers are
shown with the names the policy gives their keys.

Example:
  augen bundle inspect release.tar --json
`

func bundleInspect(e *env, args []string) (err error) {
	fs := newFlags(e, "bundle inspect", bundleInspectUsage)
	asJSON := fs.Bool("json", false, "print the statement and signatures as JSON")
	policyPath := fs.String("policy", "", "show signers with the names this policy `file` gives their keys")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("expected one bundle")
	}
	trust, err := optionalPolicy(*policyPath)
	if err != nil {
		return err
	}
	defer hintKind(&err, fs.Arg(0), filekind.Tar)
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	var members []string
	env, err := bundle.ReadEnvelope(f, func(name string, size int64, body io.Reader) error {
		members = append(members, fmt.Sprintf("%s (%d bytes)", name, size))
		return nil
	})
	if err != nil {
		return err
	}
	body, err := env.DecodedPayload()
	if err != nil {
		return err
	}
	st, err := bundle.ParseStatement(body)
	if err != nil {
		return err
	}
	var signers []string
	for _, s := range env.Signatures {
		signers = append(signers, s.KeyID)
	}
	if *asJSON {
		return writeJSON(e.stdout, map[string]any{"members": members, "signatures": signers, "statement": st})
	}
	fmt.Fprintf(e.stdout, "%s: %s %s (app %s), NOT VERIFIED\n", fs.Arg(0), st.Predicate.Board, st.Predicate.Version, st.Predicate.AppID)
	if rv := st.Predicate.RequiresVersion; rv != "" {
		fmt.Fprintf(e.stdout, "  requires machines at %s or later (older ones need a floor first)\n", rv)
	}
	for _, p := range st.Predicate.Payloads {
		from := ""
		if p.FromVersion != "" {
			from = " from " + p.FromVersion
		}
		if p.PartitionSize > 0 {
			from += " for " + bundle.SizeLabel(p.PartitionSize) + " partitions"
		}
		fmt.Fprintf(e.stdout, "  %-34s %-5s%s  %d bytes, sha256 %s\n", p.Name, p.Kind, from, p.Size, p.SHA256Hex)
	}
	for _, s := range signers {
		fmt.Fprintf(e.stdout, "  signed by %s (not checked here)\n", trust.Label(s))
	}
	return nil
}

const bundleSignUsage = `Usage: augen bundle sign release.tar --key URI [--policy policy.json] -o signed.tar

Adds a signature to an existing bundle (a second officer, on another day)
without rebuilding anything: payloads, names and times stay the same.

Example:
  augen bundle sign release.tar --key 'pkcs11:object=21;type=private' -o release.signed.tar
`

func bundleSign(e *env, args []string) (err error) {
	fs := newFlags(e, "bundle sign", bundleSignUsage)
	var keys []string
	fs.StringArrayVar(&keys, "key", nil, "sign with this key `URI` (repeatable)")
	insecure := fs.Bool("allow-insecure-key-file", false, "accept key files that others can read")
	official := fs.Bool("official", false, officialUsage)
	out := fs.StringP("output", "o", "", "write the signed bundle to `path`")
	asJSON := fs.Bool("json", false, "print what was written as JSON")
	policyPath := fs.String("policy", "", "show the signers already there with the names this policy `file` gives their keys, and refuse a --key it does not trust")
	if err := parse(fs, args); err != nil {
		return err
	}
	trust, err := optionalPolicy(*policyPath)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 || len(keys) == 0 || *out == "" {
		return withHint(usagef("expected one bundle, --key and -o"), `run "augen bundle sign --help"`)
	}
	defer hintKind(&err, fs.Arg(0), filekind.Tar)
	signers, err := openBundleKeys(e, keys, *insecure, *official)
	if err != nil {
		return err
	}
	defer closeKeys(signers)
	if trust != nil {
		// A signature by a key the policy does not trust counts for
		// nothing: refuse it rather than add it.
		for _, s := range signers {
			id, err := bundle.KeyID(s.Public())
			if err != nil {
				return err
			}
			if _, ok := trust.BundleKeys()[id]; !ok {
				return withHint(fmt.Errorf("%w: %s (%s) is not one of the bundle keys of %s (%s): its signature would count for nothing",
					errUntrustedSigner, s.URI(), id, *policyPath, trust.Labels(slices.Sorted(maps.Keys(trust.BundleKeys())))),
					"sign with a key the policy lists, or have the policy's owner add this key (augen policy init --bundle-key)")
			}
		}
	}
	in, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer in.Close()
	total := 0
	err = writeOutput(e, *out, func(w io.Writer) error {
		return bundle.AddSignature(in, w, func(env *bundle.Envelope, st *bundle.Statement) error {
			// Say what the signature will vouch for before it is made.
			fmt.Fprintf(e.stderr, "%s: signing release %s %s (app %s)\n", programName, st.Predicate.Board, st.Predicate.Version, st.Predicate.AppID)
			for _, p := range st.Predicate.Payloads {
				fmt.Fprintf(e.stderr, "%s:   %-34s %-5s %d bytes, sha256 %s\n", programName, p.Name, p.Kind, p.Size, p.SHA256Hex)
			}
			for _, sg := range env.Signatures {
				fmt.Fprintf(e.stderr, "%s:   already signed by %s (not checked here: augen verify does)\n", programName, trust.Label(sg.KeyID))
			}
			for _, s := range signers {
				if err := env.Sign(s); err != nil {
					return err
				}
			}
			total = len(env.Signatures)
			return nil
		}, tempDirFor(*out))
	})
	if err != nil {
		return err
	}
	if *out != "-" {
		fmt.Fprintf(e.stderr, "wrote %s: %d signature(s), %d added\n", *out, total, len(signers))
	}
	if *asJSON {
		return writeJSON(e.stdout, struct {
			Output     string `json:"output"`
			Signatures int    `json:"signatures"`
			Added      int    `json:"added"`
		}{*out, total, len(signers)})
	}
	return nil
}

// errUntrustedSigner is bundle sign --policy refusing a key the policy
// does not trust (exit 3).
var errUntrustedSigner = toolkit.Rejection("bundle sign: untrusted key")

// readSmallFile reads a file of at most max bytes (a certificate, a key),
// checking its size before reading it.
func readSmallFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > max {
		return nil, fmt.Errorf("%s is not a regular file of at most %d bytes", path, max)
	}
	return io.ReadAll(io.LimitReader(f, max))
}
