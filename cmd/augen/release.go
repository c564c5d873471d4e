package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/pflag"

	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/filekind"
	"github.com/augen-project/augen/release"
	"github.com/augen-project/augen/unpack"
)

const releaseUsage = `Usage: augen release ARCH-usr/VERSION/ --signing-key buildbot.asc [--secure-boot-cert db.crt]... --key URI... [--bundle-key URI...]
                     [--delta-from OLD_VERSION=OLD_FOLDER_OR_IMAGE]... [--partition-size SIZE]... -o release.tar
       augen release IMAGE.bin.bz2 --version V|--version-file version.txt [--board B] --key URI... [--bundle-key URI...]
                     [--delta-from OLD_VERSION=OLD_IMAGE.bin.bz2]... [--extra oem-NAME.gz]...
                     [--partition-size SIZE]... [--requires-version V0] -o release.tar

The first form takes today's Flatcar release as CI hands it over: the
folder data/download_payloads leaves (ARCH-usr/VERSION/ holding
flatcar_production_update.bin.bz2, the Secure-Boot-signed
flatcar_production_image.vmlinuz, the oem-*.raw and flatcar-*.raw sysext
images, and the buildbot's .sig of each). Before anything is built:
  - every file's .sig is verified against --signing-key (a missing .sig is
    refused; so is a signing subkey that has expired or was revoked, which
    gpg still calls good: --allow-expired-signing-key re-releases an old
    build); a subkey expiring within 30 days is warned about;
  - the board and version come from the folder's name, and must be the
    ones the /usr's os-release and the kernel's architecture say;
  - the kernel must carry the /usr's dm-verity root hash, and its Secure
    Boot (Authenticode) signature must chain to a --secure-boot-cert
    (required with --official); its signer is recorded;
  - each sysext must be this build's: its dm-verity tree and root hash,
    that root hash signed by a certificate in this /usr's
    /usr/lib/verity.d, and its extension-release matching the /usr as
    systemd-sysext matches them.
It builds flatcar_production_update.gz (the /usr and the kernel), one extra
payload per sysext, named as Flatcar names them (oem-azure.raw gives
oem-azure.gz), deltas from --delta-from (an older folder or production
image), and one bundle.

The second form takes a CI production image (a GPT disk image).

The signing side in one command: unpack the CI image (with its checks:
GPT, the verity root hash against the kernel, --signature/--digests when
given), build the full payload and a delta from each --delta-from image,
sign the payloads with --key (the LAST is the one update_engine checks),
and bundle them with extra payloads into one release, signed with
--bundle-key (default: the --key keys). Check it with "augen verify".

A delta applies only on machines whose USR partition has the size it was
built for: the client hashes the whole running partition (the image, then
zeros). Flatcar's partitions are 1 GiB on machines installed before
2025-09 and 2 GiB since. --partition-size SIZE (repeatable) builds one delta
per source and size, named delta-from-VERSION-for-SIZE.gz when there are
several (e.g. --partition-size 1GiB --partition-size 2GiB); the default is
one delta for partitions of the image's size. The statement records each
delta's partition size, and "augen verify --old" applies it on one.

--requires-version V0 records in the signed statement that machines older
than V0 must not update to this release directly (they first need a floor:
a release at or above V0 that "augen push --floor-reason" marked as one);
push refuses a channel where they would be offered it directly.

Examples:
  augen release amd64-usr/4459.2.1/ --signing-key buildbot.asc --secure-boot-cert db.crt \
      --key 'pkcs11:object=10;type=private' --delta-from 4426.0.0=amd64-usr/4426.0.0/ -o release.tar
  augen release flatcar_production_image.bin.bz2 --version 4459.2.1 \
      --key 'pkcs11:object=10;type=private' \
      --delta-from 4426.0.0=flatcar_production_image-4426.0.0.bin.bz2 -o release.tar
`

// releaseFlags are release's flags.
type releaseFlags struct {
	bf                                   bundleFlags
	keys, deltas, extras, parts, sbCerts []string
	allowExpired, insecure, asJSON       *bool
	uf                                   *unpackFlags
	out                                  *string
}

func addReleaseFlags(fs *pflag.FlagSet) *releaseFlags {
	r := &releaseFlags{bf: bundleFlags{version: fs.String("version", "", "the release `version` (MAJOR.MINOR.PATCH)"),
		board:           fs.String("board", "", "the `board` (amd64-usr or arm64-usr); default: the image's, from its kernel's architecture, which a --board must not contradict"),
		appID:           fs.String("app-id", bundle.FlatcarAppID, "the Omaha app `id`"),
		versionFile:     fs.String("version-file", "", "read the version from a seed-style version.txt `file` (FLATCAR_BUILD/BRANCH/PATCH)"),
		requiresVersion: fs.String("requires-version", "", requiresVersionUsage)}}
	fs.StringArrayVar(&r.keys, "key", nil, "sign the payloads with this key `URI` (repeatable; the LAST is the one update_engine checks)")
	fs.StringArrayVar(&r.bf.keys, "bundle-key", nil, "sign the bundle with this key `URI` (repeatable; default: the --key keys)")
	fs.StringArrayVar(&r.deltas, "delta-from", nil, "also build a delta from an older CI image, as `VERSION=IMAGE` (repeatable)")
	fs.StringArrayVar(&r.extras, "extra", nil, "an extra payload `file` to ship (oem-*.gz, flatcar-*.gz; repeatable)")
	fs.StringArrayVar(&r.parts, "partition-size", nil, "build each delta for machines whose USR partition is `SIZE` (repeatable: one delta per size; default: the image's size)")
	fs.StringArrayVar(&r.sbCerts, "secure-boot-cert", nil, secureBootCertUsage)
	r.allowExpired = fs.Bool("allow-expired-signing-key", false, "(a folder) accept .sig files by a signing subkey that has expired or was revoked since it signed, as gpg does: for re-releasing an old build")
	r.uf = addUnpackFlags(fs)
	r.insecure = fs.Bool("allow-insecure-key-file", false, "accept key files that others can read")
	fs.BoolVar(&r.bf.official, "official", false, officialUsage+"; the CI image's OpenPGP signature (--signature) or DIGESTS (--digests) must be checked")
	r.out = fs.StringP("output", "o", "", "write the release bundle to `path`")
	r.asJSON = fs.Bool("json", false, "print what was written as JSON")
	return r
}

func releaseCmd(e *env, args []string) error {
	fs := newFlags(e, "release", releaseUsage)
	r := addReleaseFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *r.out == "" || len(r.keys) == 0 {
		return withHint(usagef("expected one image, --key and -o"), `run "augen release --help"`)
	}
	opts, folder, err := r.check(e, fs.Arg(0))
	if err != nil {
		return err
	}
	payloadKeys, err := openKeys(e, r.keys, keyOptions(e, *r.insecure, r.bf.official))
	if err != nil {
		return err
	}
	defer closeKeys(payloadKeys)
	bundleKeys, err := openBundleKeys(e, r.bf.keys, *r.insecure, r.bf.official)
	if err != nil {
		return err
	}
	defer closeKeys(bundleKeys)
	var uris []string
	for _, k := range payloadKeys {
		opts.PayloadSigners = append(opts.PayloadSigners, k)
		uris = append(uris, k.URI())
	}
	for _, k := range bundleKeys {
		opts.BundleSigners = append(opts.BundleSigners, k)
	}
	res, err := r.build(e, opts)
	if err != nil {
		return err
	}
	if folder == nil {
		logTo(e)(inputChecks(fs.Arg(0), res.Image))
	} else {
		logTo(e)(folderChecks(folder, res))
	}
	st := res.Statement
	fmt.Fprintf(e.stderr, "wrote %s: %s %s, %d payload(s), signed by %d key(s)\n", *r.out, st.Predicate.Board, st.Predicate.Version, len(st.Predicate.Payloads), len(bundleKeys))
	if *r.asJSON {
		j := bundleJSON(*r.out, st)
		j.Keys = uris
		return writeJSON(e.stdout, j)
	}
	for _, p := range res.Payloads {
		fmt.Fprintf(e.stdout, "  %-34s %-5s %d bytes\n", p.Name, p.Kind, p.Size)
	}
	fmt.Fprintf(e.stdout, "  payloads signed by %d key(s); update_engine checks %s\n", len(payloadKeys), uris[len(uris)-1])
	return nil
}

// check checks everything that can be checked before hours of work (and
// before a key is opened), and returns the release's options without
// signers; folder is the release folder arg is (nil for a CI image).
func (r *releaseFlags) check(e *env, arg string) (opts release.Options, folder *release.Folder, err error) {
	bf, uf := &r.bf, r.uf
	certs, err := readCertificates(r.sbCerts)
	if err != nil {
		return opts, nil, err
	}
	if folder, err = releaseFolder(e, arg, bf, uf, r.extras, *r.allowExpired); err != nil {
		return opts, nil, err
	}
	if folder == nil {
		if err := bf.resolveVersion(); err != nil {
			return opts, nil, err
		}
	}
	plan, err := checkReleaseArgs(e, arg, *bf.board, *uf.usrSize, r.deltas, r.extras, folder != nil)
	if err != nil {
		return opts, nil, err
	}
	usrSize := *uf.usrSize
	if folder != nil {
		usrSize = "" // the folder's /usr image is whole: its size is checked when it is read
	}
	partitions, err := checkPartitionSizes(r.parts, usrSize, len(r.deltas) > 0)
	if err != nil {
		return opts, nil, err
	}
	if len(bf.keys) == 0 {
		bf.keys = r.keys
	}
	if err := checkOfficial(bf.official, append(append([]string{}, r.keys...), bf.keys...), *r.insecure); err != nil {
		return opts, nil, err
	}
	if folder == nil {
		if err := officialImageChecked(bf.official, uf); err != nil {
			return opts, nil, err
		}
	}
	mtime, err := buildTime()
	if err != nil {
		return opts, nil, err
	}
	opts = release.Options{Image: arg, Version: *bf.version, RequiresVersion: *bf.requiresVersion, Board: *bf.board, AppID: *bf.appID, Extras: r.extras,
		PartitionSizes: partitions, SecureBootCerts: certs, RequireSecureBoot: bf.official,
		Augen: version, MTime: mtime, TempDir: tempDirFor(*r.out), Log: logTo(e)}
	for _, d := range plan {
		opts.Deltas = append(opts.Deltas, release.Delta{Version: d.version, Image: d.image, Kernel: d.kernel})
	}
	if folder != nil {
		opts.Image, opts.Kernel, opts.Sysexts = folder.USR, folder.Kernel, folder.Sysexts
		return opts, folder, nil
	}
	uf.kernel = new(string)
	uo, checks, end, err := uf.options(e, arg, "")
	if err != nil {
		return opts, nil, err
	}
	end()
	opts.Unpack, opts.Checks = uo, checks
	return opts, nil, nil
}

// build builds the release into -o, with progress.
func (r *releaseFlags) build(e *env, opts release.Options) (*release.Result, error) {
	var end func()
	opts.Progress, end = showProgress(e, "")
	f, err := createOutput(e, *r.out)
	if err != nil {
		return nil, err
	}
	defer f.Abort()
	res, err := release.Build(e.ctx, f, opts)
	end()
	if ve := (*release.VersionError)(nil); errors.As(err, &ve) {
		return nil, withHint(err, "release the image under the version it was built as (--version "+ve.Got+"), or give the right image")
	}
	if err != nil {
		return nil, err
	}
	return res, f.Commit()
}

// deltaFrom is one --delta-from: the old release's version and CI image
// (or, from an older release folder, its /usr image and kernel).
type deltaFrom struct{ version, image, kernel string }

var releaseVersion = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

// checkReleaseArgs checks release's arguments before any work: the board,
// the --usr-size, every --delta-from (VERSION=IMAGE, as bundle create
// takes it; the older IMAGE=VERSION is accepted with a note) and --extra
// file.
func checkReleaseArgs(e *env, image, board, usrSize string, deltas, extras []string, folder bool) ([]deltaFrom, error) {
	if _, ok := bundle.Boards[board]; !ok && board != "" {
		return nil, withHint(usagef("--board %q: unknown board", board), "amd64-usr or arm64-usr")
	}
	if _, err := parseSize(usrSize); err != nil {
		return nil, withHint(err, "e.g. --usr-size 1GiB (Flatcar's), 4MiB, or a number of bytes")
	}
	if !folder {
		if err := regularFile(image, "image"); err != nil {
			return nil, err
		}
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
		if st, err := os.Stat(df.image); err == nil && st.IsDir() {
			old, err := release.ReadFolder(df.image)
			if err != nil {
				return nil, usagef("--delta-from %s: %v", df.version, err)
			}
			if old.Version != "" && old.Version != df.version {
				return nil, usagef("--delta-from %s=%s: that folder is release %s", df.version, df.image, old.Version)
			}
			df.image, df.kernel = old.USR, old.Kernel
		} else if err := regularFile(df.image, "--delta-from "+df.version); err != nil {
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

// inputChecks is the line every signing command prints about its CI image:
// which of the image's own checks ran.
func inputChecks(image string, res *unpack.Result) string {
	ran := imageChecks(res)
	if ran == "" {
		return "warning: " + image + ": the CI image's own checks did not run (no --signature, no --digests): nothing proves it is the image CI built; --official requires one"
	}
	if res.SignedBy == "" && (res.Digests == nil || res.Digests.SignedBy == "") {
		return "warning: " + image + ": " + ran + ", but nothing signed proves it is the image CI built (whoever can replace the image can replace the DIGESTS beside it); --official requires its .sig or DIGESTS.asc"
	}
	return "input checks: " + image + ": " + ran + "; GPT and the kernel's dm-verity root hash checked"
}

// officialImageChecked refuses an --official build from a CI image whose
// origin no OpenPGP signature will prove: its detached signature
// (--signature) or a signed DIGESTS file (DIGESTS.asc) must be given. An
// unsigned DIGESTS proves nothing: whoever can replace the image can
// replace the file beside it.
func officialImageChecked(official bool, uf *unpackFlags) error {
	if !official || *uf.signature != "" {
		return nil
	}
	if *uf.digests != "" && unpack.IsClearsigned(*uf.digests) {
		return nil
	}
	if *uf.digests != "" {
		return withHint(usagef("--official: %s is not signed: an unsigned DIGESTS file proves nothing (whoever can replace the image can replace it)", *uf.digests),
			"give the signed one, DIGESTS.asc, with --signing-key, or the image's .sig with --signature")
	}
	return withHint(usagef("--official needs the CI image's OpenPGP signature checked: give its .sig (--signature, --signing-key) or its signed DIGESTS.asc (--digests, --signing-key)"),
		"an official release is built only from an image proven to be the one CI built")
}

// checkPartitionSizes reads release's --partition-size values: each at
// least the USR image's size, none twice, and only with a --delta-from.
func checkPartitionSizes(values []string, usrSize string, deltas bool) ([]int64, error) {
	if len(values) > 0 && !deltas {
		return nil, withHint(usagef("--partition-size goes with --delta-from"), "a full payload applies on a partition of any size")
	}
	usr := int64(0)
	if usrSize != "" {
		var err error
		if usr, err = parseSize(usrSize); err != nil {
			return nil, err
		}
	}
	var out []int64
	seen := map[int64]bool{}
	for _, v := range values {
		n, err := parseSize(v)
		if err != nil {
			return nil, withHint(err, "e.g. --partition-size 1GiB --partition-size 2GiB (Flatcar's two kinds of machine)")
		}
		if n < usr {
			return nil, withHint(usagef("--partition-size %s is smaller than the USR image (--usr-size %s), which the partition holds", v, usrSize), "Flatcar's USR partitions are 1GiB or 2GiB")
		}
		if seen[n] {
			return nil, usagef("--partition-size %s given twice", v)
		}
		seen[n] = true
		out = append(out, n)
	}
	return out, nil
}

// releaseFolder reads release's argument as a release folder, when it is
// a directory (nil otherwise): the board and version from its name (the
// --board and --version flags, if given, must agree), and every file's
// .sig checked against --signing-key before anything is used.
func releaseFolder(e *env, arg string, bf *bundleFlags, uf *unpackFlags, extras []string, allowExpired bool) (*release.Folder, error) {
	st, err := os.Stat(arg)
	if err != nil || !st.IsDir() {
		if allowExpired {
			return nil, usagef("--allow-expired-signing-key goes with a release folder (each file's .sig)")
		}
		return nil, nil
	}
	f, err := release.ReadFolder(arg)
	if err != nil {
		return nil, err
	}
	switch {
	case *uf.signature != "" || *uf.digests != "":
		return nil, withHint(usagef("--signature and --digests take a production image; a release folder carries a .sig beside each file"), "give --signing-key only")
	case len(extras) > 0:
		return nil, withHint(usagef("--extra takes built payloads; a release folder's sysexts (%d) are built from the folder", len(f.Sysexts)), "drop --extra")
	case *bf.versionFile != "":
		return nil, usagef("--version-file: a release folder's version is its name (%s)", arg)
	}
	for _, c := range []struct {
		flag      *string
		name, got string
	}{{bf.version, "version", f.Version}, {bf.board, "board", f.Board}} {
		switch {
		case *c.flag == "" && c.got == "":
			return nil, withHint(usagef("%s: the folder's name gives no %s (download_payloads names it ARCH-usr/VERSION)", arg, c.name), "give --"+c.name)
		case *c.flag == "":
			*c.flag = c.got
		case c.got != "" && *c.flag != c.got:
			return nil, usagef("--%s %s, but the folder is %s", c.name, *c.flag, arg)
		}
	}
	for _, o := range f.Other {
		fmt.Fprintf(e.stderr, "%s: note: %s is not released (neither the /usr image, the kernel, nor a sysext)\n", programName, o)
	}
	if *uf.signingKey == "" {
		if bf.official {
			return nil, withHint(usagef("--official needs every file's .sig checked: give --signing-key"), "the buildbot's public key (Flatcar's: the one generate_payload imports)")
		}
		fmt.Fprintf(e.stderr, "%s: warning: no --signing-key: the folder's .sig files are not checked, so nothing proves these files are the ones CI built\n", programName)
		return f, nil
	}
	sigs, err := release.SignatureChecks(f.Files(), *uf.signingKey, unpack.SignatureOptions{AllowExpired: allowExpired}, logTo(e))
	if err != nil {
		return nil, err
	}
	if len(sigs) > 0 {
		s := sigs[len(sigs)-1]
		expires := "never expires"
		if !s.Expires.IsZero() {
			expires = "expires " + s.Expires.Format("2006-01-02")
		}
		fmt.Fprintf(e.stderr, "%s: %d .sig files verified: %s, subkey %s (%s)\n", programName, len(sigs), s.Signer, s.KeyID, expires)
	}
	return f, nil
}

// folderChecks is the line release prints about a folder's checks.
func folderChecks(f *release.Folder, res *release.Result) string {
	sb := "kernel not signed for Secure Boot"
	if s := res.SecureBoot; s != nil {
		sb = "kernel signed for Secure Boot by " + s.Subject
		if s.TrustedBy == "" {
			sb += " (no --secure-boot-cert: not checked against a trusted certificate)"
		}
	}
	return fmt.Sprintf("input checks: %s: the kernel carries the /usr's dm-verity root hash; %s; %d sysext(s) checked against the /usr (verity, signature by /usr/lib/verity.d, extension-release)", f.Dir, sb, len(f.Sysexts))
}
