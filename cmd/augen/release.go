package main

import (
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/augen-project/augen/internal/filekind"
	"github.com/augen-project/augen/internal/tempfile"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/osrelease"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/generate"
)

const releaseUsage = `Usage: augen release IMAGE.bin.bz2 --version V|--version-file version.txt [--board amd64-usr] --key URI... [--bundle-key URI...]
                     [--delta-from OLD_VERSION=OLD_IMAGE.bin.bz2]... [--extra oem-NAME.gz]... -o release.tar

The signing side in one command: unpack the CI image (with its checks:
GPT, the verity root hash against the kernel, --signature/--digests when
given), build the full payload and a delta from each --delta-from image,
sign the payloads with --key (the LAST is the one update_engine checks),
and bundle them with extra payloads into one release, signed with
--bundle-key (default: the --key keys). Check it with "augen verify".

Example:
  augen release flatcar_production_image.bin.bz2 --version 4459.2.1 \
      --key 'pkcs11:object=10;type=private' \
      --delta-from 4426.0.0=flatcar_production_image-4426.0.0.bin.bz2 -o release.tar
`

func releaseCmd(e *env, args []string) error {
	fs := newFlags(e, "release", releaseUsage)
	bf := bundleFlags{version: fs.String("version", "", "the release `version` (MAJOR.MINOR.PATCH)"),
		board:       fs.String("board", "amd64-usr", "the `board` (amd64-usr or arm64-usr)"),
		appID:       fs.String("app-id", bundle.FlatcarAppID, "the Omaha app `id`"),
		versionFile: fs.String("version-file", "", "read the version from a seed-style version.txt `file` (FLATCAR_BUILD/BRANCH/PATCH)")}
	var keys, deltas, extras []string
	fs.StringArrayVar(&keys, "key", nil, "sign the payloads with this key `URI` (repeatable; the LAST is the one update_engine checks)")
	fs.StringArrayVar(&bf.keys, "bundle-key", nil, "sign the bundle with this key `URI` (repeatable; default: the --key keys)")
	fs.StringArrayVar(&deltas, "delta-from", nil, "also build a delta from an older CI image, as `VERSION=IMAGE` (repeatable)")
	fs.StringArrayVar(&extras, "extra", nil, "an extra payload `file` to ship (oem-*.gz, flatcar-*.gz; repeatable)")
	uf := addUnpackFlags(fs)
	insecure := fs.Bool("allow-insecure-key-file", false, "accept key files that others can read")
	out := fs.StringP("output", "o", "", "write the release bundle to `path`")
	asJSON := fs.Bool("json", false, "print what was written as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *out == "" || len(keys) == 0 {
		return withHint(usagef("expected one image, --key and -o"), `run "augen release --help"`)
	}
	if err := bf.resolveVersion(); err != nil {
		return err
	}
	// Everything that can be checked before hours of work is checked now.
	plan, err := checkReleaseArgs(e, fs.Arg(0), *bf.board, *uf.usrSize, deltas, extras)
	if err != nil {
		return err
	}
	if len(bf.keys) == 0 {
		bf.keys = keys
	}
	signers, err := openKeys(e, keys, signerOptions(e, *insecure))
	if err != nil {
		return err
	}
	defer closeKeys(signers)
	var cs []crypto.Signer
	var sizes []int
	var pubKeys []string
	for _, s := range signers {
		cs = append(cs, s)
		sizes = append(sizes, s.SignatureSize())
		pubKeys = append(pubKeys, s.URI())
	}
	tmp, err := tempfile.MkdirTemp(tempDirFor(*out), ".augen-release-*")
	if err != nil {
		return err
	}
	defer tempfile.RemoveAll(tmp)
	uf.kernel = new(string)
	fmt.Fprintf(e.stderr, "unpacking %s\n", fs.Arg(0))
	usr, kernel, err := unpackTo(e, uf, fs.Arg(0), tmp, "new")
	if err != nil {
		return err
	}
	if err := checkImageVersion(e, usr, *bf.version); err != nil {
		return err
	}
	input, err := inputDigest(fs.Arg(0))
	if err != nil {
		return err
	}
	build := func(name string, delta *[3]string) error {
		var closers []io.Closer
		defer func() {
			for _, c := range closers {
				c.Close()
			}
		}()
		f, err := os.Create(filepath.Join(tmp, name))
		if err != nil {
			return err
		}
		defer f.Close()
		opts := generate.BuildOptions{SignatureSizes: sizes, Sign: payload.SignWith(cs), TempDir: tmp}
		if opts.Image, err = openInput(usr, "image", &closers); err != nil {
			return err
		}
		if opts.Kernel, err = openInput(kernel, "kernel", &closers); err != nil {
			return err
		}
		var p func(int64, int64)
		p, done := progress(e, "building "+name)
		opts.Progress = p
		defer done()
		if delta == nil {
			_, err = generate.BuildFull(e.ctx, f, opts)
			return err
		}
		_, err = buildDelta(e, f, opts, delta[0], delta[1], kernel, &closers)
		return err
	}
	files := []bundle.PayloadFile{{Path: filepath.Join(tmp, "flatcar_production_update.gz"), Name: "flatcar_production_update.gz", Kind: bundle.KindFull}}
	if err := build("flatcar_production_update.gz", nil); err != nil {
		return err
	}
	for i, d := range plan {
		img, v := d.image, d.version
		fmt.Fprintf(e.stderr, "unpacking %s (%s)\n", img, v)
		// --digests and --signature speak of the new image only.
		noCheck := *uf
		noCheck.digests, noCheck.signature, noCheck.signingKey = new(string), new(string), new(string)
		oldUSR, oldKernel, err := unpackTo(e, &noCheck, img, tmp, fmt.Sprintf("old%d", i))
		if err != nil {
			return err
		}
		name := "delta-from-" + v + ".gz"
		if err := build(name, &[3]string{oldUSR, oldKernel}); err != nil {
			return err
		}
		files = append(files, bundle.PayloadFile{Path: filepath.Join(tmp, name), Name: name, Kind: bundle.KindDelta, FromVersion: v})
	}
	for _, x := range extras {
		files = append(files, bundle.PayloadFile{Path: x, Name: filepath.Base(x), Kind: bundle.KindExtra})
	}
	st, err := writeBundle(e, bf, files, pubKeys, input, *insecure, *out)
	if err != nil {
		return err
	}
	if *asJSON {
		res := bundleJSON(*out, st)
		res.Keys = pubKeys
		return writeJSON(e.stdout, res)
	}
	for _, f := range files {
		st, _ := os.Stat(f.Path)
		fmt.Fprintf(e.stdout, "  %-34s %-5s %d bytes\n", f.Name, f.Kind, st.Size())
	}
	fmt.Fprintf(e.stdout, "  payloads signed by %d key(s); update_engine checks %s\n", len(signers), signers[len(signers)-1].URI())
	return nil
}

// inputDigest is the size and SHA-256 of the CI image, for the statement.
func inputDigest(path string) (*bundle.Digests, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := newSHA256()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, err
	}
	return &bundle.Digests{Size: n, SHA256: fmt.Sprintf("%x", h.Sum(nil))}, nil
}

func newSHA256() hashWriter { return sha256.New() }

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

// checkImageVersion refuses to release an image under another version
// than its /usr declares (verify would refuse the bundle later; this says
// so before anything is built or signed).
func checkImageVersion(e *env, usr, version string) error {
	f, err := os.Open(usr)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	got, from, err := osrelease.Version(e.ctx, f, st.Size())
	switch {
	case errors.Is(err, osrelease.ErrNoFilesystem), errors.Is(err, osrelease.ErrNoVersion):
		fmt.Fprintf(e.stderr, "%s: warning: the image's /usr declares no release version (%v); it is not checked against %s\n", programName, err, version)
		return nil
	case err != nil:
		return fmt.Errorf("reading the image's release version: %w", err)
	case got != version:
		return withHint(fmt.Errorf("the image's %s says VERSION=%s, not %s", from, got, version), "release the image under the version it was built as (--version "+got+"), or give the right image")
	}
	return nil
}

// deltaFrom is one --delta-from: the old release's version and CI image.
type deltaFrom struct{ version, image string }

var releaseVersion = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

// checkReleaseArgs checks release's arguments before any work: the board,
// the --usr-size, every --delta-from (VERSION=IMAGE, as bundle create
// takes it; the older IMAGE=VERSION is accepted with a note) and --extra
// file.
func checkReleaseArgs(e *env, image, board, usrSize string, deltas, extras []string) ([]deltaFrom, error) {
	if _, ok := bundle.Boards[board]; !ok {
		return nil, withHint(usagef("--board %q: unknown board", board), "amd64-usr or arm64-usr")
	}
	if _, err := parseSize(usrSize); err != nil {
		return nil, withHint(err, "e.g. --usr-size 1GiB (Flatcar's), 4MiB, or a number of bytes")
	}
	if err := regularFile(image, "image"); err != nil {
		return nil, err
	}
	var plan []deltaFrom
	seen := map[string]bool{}
	for _, d := range deltas {
		a, b, ok := strings.Cut(d, "=")
		var df deltaFrom
		switch {
		case ok && releaseVersion.MatchString(a):
			df = deltaFrom{version: a, image: b}
		case ok && releaseVersion.MatchString(b):
			df = deltaFrom{version: b, image: a}
			fmt.Fprintf(e.stderr, "%s: note: --delta-from IMAGE=VERSION is deprecated; write --delta-from %s=%s\n", programName, b, a)
		default:
			return nil, withHint(usagef("--delta-from %q: want VERSION=IMAGE", d), "e.g. --delta-from 4426.0.0=flatcar_production_image-4426.0.0.bin.bz2")
		}
		if seen[df.version] {
			return nil, usagef("--delta-from: version %s given twice", df.version)
		}
		seen[df.version] = true
		if err := regularFile(df.image, "--delta-from "+df.version); err != nil {
			return nil, err
		}
		plan = append(plan, df)
	}
	for _, x := range extras {
		if err := regularFile(x, "--extra"); err != nil {
			return nil, err
		}
		if k, err := filekind.DetectFile(x); err == nil && k != filekind.Payload {
			return nil, usagef("--extra %s is %s, not an update payload", x, k)
		}
	}
	return plan, nil
}

// regularFile checks that path names a readable regular file.
func regularFile(path, what string) error {
	st, err := os.Stat(path)
	if err != nil {
		return usagef("%s: %v", what, err)
	}
	if !st.Mode().IsRegular() {
		return usagef("%s: %s is not a regular file", what, path)
	}
	return nil
}
