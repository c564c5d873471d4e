package main

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/augen-project/augen/internal/filekind"
	"github.com/augen-project/augen/internal/tempfile"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/apply"
	"github.com/augen-project/augen/payload/generate"
	"github.com/augen-project/augen/signer"
	"github.com/augen-project/augen/unpack"
)

const payloadBuildUsage = `Usage: augen payload build --image USR.bin [--kernel VMLINUZ] [--pcr-policy ZIP] [--key URI]... -o OUT
       augen payload build --old OLD.bin --image USR.bin [--old-kernel K0 --kernel K1] [--key URI]... -o DELTA
       augen payload build --from-image IMAGE.bin.bz2 [--old-from-image OLD_IMAGE.bin.bz2] [--key URI]... -o OUT
       augen payload build --extra --image SYSEXT.raw [--key URI]... -o oem-NAME.gz

Builds a full update payload (CrAU v1) the way update_engine's delta_generator
does: the image in 1 MiB chunks, each bzip2-compressed when that is smaller,
the kernel as a KERNEL procedure, every blob hashed. Chunks are compressed on
all cores; the output is the same whatever the core count.

--image and --old may be bzip2-compressed (CI's flatcar_production_update.bin.bz2):
they are decoded to a temporary file beside the output first.

With --from-image, the USR image and the kernel come straight from a
production image, unpacked and checked as "augen unpack" does (GPT CRCs, the
dm-verity root hash against the kernel's); --kernel then overrides the
image's kernel. --old-from-image does the same for a delta's old side.

With --extra, builds an extra payload (oem-*.gz, flatcar-*.gz: a
systemd-sysext image). Machines install extras with ue-rs, not
update_engine: it writes each operation's data at its one extent, neither
padded nor cut, and checks the file's SHA-256. So the image may have any
size, the payload carries no kernel, and it is installed by ue-rs's rules
as it is written (a payload that would install wrongly is not finished).

With --old, builds a delta from OLD (same size as the image) instead.
When both images hold an ext2/3/4 or btrfs filesystem, it works file by
file: each changed file becomes a BSDIFF from its old version (same path,
a hard link, or the same name under a renamed version directory such as
lib/modules/6.1.0-56-flatcar -> -57-), read from the old file's own blocks;
unchanged files cost nothing, moved ones become MOVEs. What no file owns
(inodes, directories, new files) is planned block by block: blocks found
elsewhere in OLD become MOVEs, the rest BSDIFF against the old data its
content points to, or REPLACE_BZ. Images without a filesystem augen reads
are planned block by block (with a note). Operations are ordered so that
applying them in place never reads a block already overwritten; a cycle
(files that swapped places) becomes one operation. With --old-kernel the
kernel is a delta too. Check it with "augen payload verify --old"; see what
it does to each file with "augen payload inspect DELTA --image USR.bin".

A delta applies on machines whose USR partition has one size: the client
hashes its whole running partition (the image, then zeros to the end) and
compares that with the delta's old side. Flatcar's partitions are 1 GiB
on machines installed before 2025-09 and 2 GiB since, while the image stays
1 GiB. --partition-size SIZE builds the delta for partitions of SIZE
(--partition-size 2GiB for the newer machines); the default is the old
image's own size, the 1 GiB machines (as delta_generator does). Build one
delta per size ("augen release" does, with --partition-size repeated).

Signing: each --key adds one signature, in the order given. update_engine
checks ONLY the signature with version 2, which is the LAST key given; earlier
keys are for other verifiers (and key rotation). Keys must be RSA (2048 bits
for clients older than late 2022). Without --key the payload is unsigned:
sign it later with "augen payload digest" and "augen payload attach".

Key URIs: file:PATH (a PEM key, mode 0600); pkcs11:… (RFC 7512, a key in an
HSM or token; PIN from pin-source=, $AUGEN_PKCS11_PIN, or a prompt);
tpm:handle=0x81…|key=PATH[;device=/dev/tpmrm0|unix:SOCKET] (a TPM 2.0 key).
--official refuses file: keys and unsigned output.

Example:
  augen payload build --image flatcar_production_update.bin \
      --kernel flatcar_production_image.vmlinuz \
      --key file:/secure/update-key.pem -o flatcar_production_update.gz
`

// buildResult is the --json output of payload build.
type buildResult struct {
	Output     string               `json:"output"`
	Official   bool                 `json:"official"`
	Omaha      payload.OmahaSummary `json:"omaha"`
	SignedHash string               `json:"signed_hash_sha256"`
	Keys       []keyInfo            `json:"keys"`
}

type keyInfo struct {
	URI             string `json:"uri"`
	Fingerprint     string `json:"fingerprint"`
	Version         uint32 `json:"signature_version"`
	CheckedByClient bool   `json:"checked_by_client"`
}

// buildFlags are payload build's flags.
type buildFlags struct {
	image, kernel, pcr, old, fromImage, oldFromImage, oldKernel, partSize, out *string
	uf                                                                         *unpackFlags
	keys                                                                       []string
	insecure, official, extra, asJSON                                          *bool
	workers                                                                    *int
	partitionSize                                                              int64
}

func addBuildFlags(fs *pflag.FlagSet) *buildFlags {
	f := &buildFlags{}
	f.image = fs.String("image", "", "the USR partition `image` (size a multiple of 4096; may be bzip2-compressed)")
	f.kernel = fs.String("kernel", "", "the kernel `file` to ship as a KERNEL procedure")
	f.pcr = fs.String("pcr-policy", "", "a PCR policy `zip` to ship as a PCR_POLICY procedure")
	f.old = fs.String("old", "", "build a delta from this old USR `image`")
	f.fromImage = fs.String("from-image", "", "take the USR image and kernel from this production `image` (.bin or .bin.bz2)")
	f.oldFromImage = fs.String("old-from-image", "", "build a delta from this old production `image`")
	f.uf = addUnpackFlags(fs)
	f.oldKernel = fs.String("old-kernel", "", "with --old: the old kernel `file` (the kernel becomes a delta too)")
	f.partSize = fs.String("partition-size", "", "with --old: build the delta for machines whose USR partition is `SIZE` (bytes, or with KiB/MiB/GiB; default: the old image's size, Flatcar's 1 GiB machines; 2GiB for machines installed since 2025-09)")
	fs.StringArrayVar(&f.keys, "key", nil, "sign with this key `URI` (repeatable; the LAST is the one update_engine checks)")
	f.insecure = fs.Bool("allow-insecure-key-file", false, "accept key files that others can read")
	f.official = fs.Bool("official", false, "an official release: hardware keys (pkcs11:, tpm:) only, never unsigned")
	f.out = fs.StringP("output", "o", "", "write the payload to `path`")
	f.extra = fs.Bool("extra", false, "build an extra payload (oem-*.gz, flatcar-*.gz: a systemd-sysext image) as ue-rs installs it: any image size, no kernel, checked by ue-rs's rules before it is written")
	f.workers = fs.Int("workers", 0, "compress on `n` goroutines (default: all cores)")
	f.asJSON = fs.Bool("json", false, "print a JSON summary to stdout")
	return f
}

// check refuses flag combinations that cannot make a payload, before any
// input, key or PIN is opened.
func (f *buildFlags) check(fs *pflag.FlagSet) error {
	delta := *f.old != "" || *f.oldFromImage != ""
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q (the image goes in --image)", fs.Arg(0))
	case (*f.image == "") == (*f.fromImage == "") || *f.out == "":
		return withHint(usagef("give -o and one of --image or --from-image"), `run "augen payload build --help"`)
	case *f.old != "" && *f.oldFromImage != "":
		return usagef("--old and --old-from-image exclude each other")
	case *f.oldFromImage != "" && *f.fromImage == "":
		return usagef("--old-from-image goes with --from-image")
	case *f.asJSON && *f.out == "-":
		return usagef("--json and -o - both write to stdout")
	}
	if err := checkOfficial(*f.official, f.keys, *f.insecure); err != nil {
		return err
	}
	switch {
	case *f.extra && (delta || *f.fromImage != "" || *f.kernel != "" || *f.pcr != ""):
		return usagef("--extra takes only --image (a sysext image): ue-rs installs extras whole, with no kernel")
	case !delta && *f.oldKernel != "":
		return usagef("--old-kernel goes with --old")
	case *f.old != "" && *f.pcr != "":
		return usagef("--pcr-policy is not supported in delta payloads yet; build a full payload")
	case *f.partSize != "" && !delta:
		return withHint(usagef("--partition-size goes with a delta (--old or --old-from-image)"), "a full payload applies on a partition of any size")
	}
	if *f.partSize != "" {
		var err error
		if f.partitionSize, err = parseSize(*f.partSize); err != nil {
			return withHint(err, "e.g. --partition-size 2GiB (Flatcar's machines installed since 2025-09) or 1GiB")
		}
	}
	if err := officialImageChecked(*f.official && *f.fromImage != "", f.uf); err != nil {
		return err
	}
	if *f.official && len(f.keys) == 0 {
		return withHint(usagef("--official refuses to write an unsigned payload"), "give the release key with --key pkcs11:… or --key tpm:…")
	}
	return nil
}

func payloadBuild(e *env, args []string) error {
	fs := newFlags(e, "payload build", payloadBuildUsage)
	f := addBuildFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := f.check(fs); err != nil {
		return err
	}
	opts := generate.BuildOptions{TempDir: tempDirFor(*f.out)}
	opts.Workers, opts.Extra = *f.workers, *f.extra
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	in, cleanup, err := resolveInputs(e, f.uf, buildInputs{image: *f.image, kernel: *f.kernel, old: *f.old, oldKernel: *f.oldKernel, extra: *f.extra},
		*f.fromImage, *f.oldFromImage, opts.TempDir)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := f.openInputs(&opts, in, &closers); err != nil {
		return err
	}
	signers, err := openKeys(e, f.keys, keyOptions(e, *f.insecure, *f.official))
	if err != nil {
		return err
	}
	defer closeKeys(signers)
	cs := make([]crypto.Signer, len(signers))
	for i, k := range signers {
		cs[i] = k
		opts.SignatureSizes = append(opts.SignatureSizes, k.SignatureSize())
	}
	if len(cs) > 0 {
		opts.Sign = payload.SignWith(cs)
	}
	out, err := createOutput(e, *f.out)
	if err != nil {
		return err
	}
	defer out.Abort()
	var done func()
	opts.Progress, done = showProgress(e, "building")
	var res *payload.Result
	if in.old != "" {
		res, err = buildDelta(e, out, opts, in.old, in.oldKernel, in.kernel, f.partitionSize, &closers)
	} else {
		res, err = generate.BuildFull(e.ctx, out, opts)
	}
	done()
	if err != nil {
		return err
	}
	if err := out.Commit(); err != nil {
		return err
	}
	return reportBuild(e, *f.out, *f.official, *f.asJSON, res, signers)
}

// openInputs opens the image, kernel and PCR policy into opts and checks
// their sizes.
func (f *buildFlags) openInputs(opts *generate.BuildOptions, in buildInputs, closers *[]io.Closer) error {
	var err error
	if opts.Image, err = openInput(in.image, "image", closers); err != nil {
		return err
	}
	if in.kernel != "" {
		if opts.Kernel, err = openInput(in.kernel, "kernel", closers); err != nil {
			return err
		}
	}
	if *f.pcr != "" {
		if opts.PCRPolicy, err = openInput(*f.pcr, "PCR policy", closers); err != nil {
			return err
		}
	}
	if opts.Image.Size == 0 || opts.Image.Size%payload.BlockSize != 0 && !*f.extra {
		return withHint(fmt.Errorf("image %s is %d bytes, not a non-zero multiple of %d", in.image, opts.Image.Size, payload.BlockSize),
			"the image is the first 1 GiB of USR-A (augen unpack, or disk_util extract)")
	}
	for _, x := range []struct {
		path string
		in   generate.Input
	}{{in.kernel, opts.Kernel}, {*f.pcr, opts.PCRPolicy}} {
		if x.path != "" && x.in.Size == 0 {
			return fmt.Errorf("%s is empty", x.path)
		}
	}
	return nil
}

// reportBuild prints what was written: the values an update service
// publishes and who signed it (--json: the same as JSON).
func reportBuild(e *env, out string, official, asJSON bool, res *payload.Result, signers []signer.Signer) error {
	r := buildResult{Output: out, Official: official, SignedHash: fmt.Sprintf("%x", res.Digest), Keys: []keyInfo{}}
	h := res.Hashes
	r.Omaha = payload.OmahaSummary{Size: h.Size, SHA256Base64: h.OmahaSHA256(), SHA1Base64: h.OmahaSHA1(), SHA256Hex: h.HexSHA256()}
	versions := payload.SignatureVersions(len(signers))
	for i, k := range signers {
		r.Keys = append(r.Keys, keyInfo{URI: k.URI(), Fingerprint: k.Fingerprint(), Version: versions[i], CheckedByClient: versions[i] == payload.CurrentSignatureVersion})
	}
	if asJSON {
		return writeJSON(e.stdout, r)
	}
	fmt.Fprintf(e.stdout, "wrote %s\n  size          %d\n  sha256        %s\n  omaha sha256  %s (base64, as Omaha sends it)\n  omaha sha1    %s (base64)\n", r.Output, h.Size, r.Omaha.SHA256Hex, r.Omaha.SHA256Base64, r.Omaha.SHA1Base64)
	if len(signers) == 0 {
		fmt.Fprintf(e.stdout, "  unsigned: sign with \"augen payload digest\" and \"augen payload attach\"\n")
	}
	for _, k := range r.Keys {
		note := ""
		if k.CheckedByClient {
			note = "  <- the signature update_engine checks"
		}
		fmt.Fprintf(e.stdout, "  signature v%d %s (%s)%s\n", k.Version, k.URI, k.Fingerprint[:16], note)
	}
	return nil
}

// buildInputs are the files a build reads.
// buildInputs are payload build's input files; extra says the image is a
// sysext image (a disk image, shipped whole: never decoded or refused as
// one).
type buildInputs struct {
	image, kernel, old, oldKernel string
	extra                         bool
}

// resolveInputs turns the inputs as given into plain files: --from-image
// and --old-from-image unpacked, bzip2 USR images decoded, into temporary
// files in dir that cleanup removes. --kernel and --old-kernel, when
// given, replace the images' kernels.
func resolveInputs(e *env, uf *unpackFlags, in buildInputs, fromImage, oldFromImage, dir string) (out buildInputs, cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	if fromImage != "" {
		// Unpacked beside the output; gone when the command ends.
		tmp, err := tempfile.MkdirTemp(dir, ".augen-unpack-*")
		if err != nil {
			return in, cleanup, err
		}
		undo = append(undo, func() { tempfile.RemoveAll(tmp) })
		var res *unpack.Result
		if in.image, in.kernel, res, err = unpackChecked(e, uf.withKernel(in.kernel), fromImage, tmp, "new"); err != nil {
			return in, cleanup, err
		}
		logTo(e)(inputChecks(fromImage, res))
		if oldFromImage != "" {
			if in.old, in.oldKernel, err = unpackTo(e, uf.withKernel(in.oldKernel), oldFromImage, tmp, "old"); err != nil {
				return in, cleanup, err
			}
		}
	}
	// A USR image may come bzip2-compressed (CI publishes
	// flatcar_production_update.bin.bz2): decoded beside the output first.
	for _, p := range []struct {
		path *string
		what string
	}{{&in.image, "image"}, {&in.old, "old image"}} {
		if *p.path == "" || in.extra {
			continue
		}
		plain, done, err := plainUSRImage(e, *p.path, p.what, dir)
		if err != nil {
			return in, cleanup, err
		}
		undo = append(undo, done)
		*p.path = plain
	}
	return in, cleanup, nil
}

// maxUSRImage bounds a decompressed --image/--old (a variable for tests).
var maxUSRImage int64 = apply.MaxPartitionSize

// plainUSRImage is unpack.PlainUSRImage with the CLI's hints and note.
func plainUSRImage(e *env, path, what, dir string) (plain string, done func(), err error) {
	plain, done, err = unpack.PlainUSRImage(e.ctx, path, dir, maxUSRImage, func(p string) {
		fmt.Fprintf(e.stderr, "decompressing %s (bzip2) to a temporary file beside the output\n", p)
	})
	var ke *unpack.KindError
	switch {
	case errors.As(err, &ke) && ke.Kind == filekind.DiskImage && ke.Inside:
		return "", nil, withHint(usagef("%s holds a GPT disk image, not a USR partition image", path),
			"give a production image with --from-image (or --old-from-image)")
	case errors.As(err, &ke) && ke.Kind == filekind.DiskImage:
		return "", nil, withHint(usagef("%s is a GPT disk image, not a USR partition image", path),
			"give a production image with --from-image (or --old-from-image), or extract USR-A with \"augen unpack\"")
	case errors.As(err, &ke):
		return "", nil, usagef("%v", err)
	case err != nil:
		return "", nil, fmt.Errorf("%s: %w", what, err)
	}
	return plain, done, nil
}

// openInput opens a regular input file and records its size.
func openInput(path, what string, closers *[]io.Closer) (generate.Input, error) {
	f, err := os.Open(path)
	if err != nil {
		return generate.Input{}, fmt.Errorf("%s: %w", what, err)
	}
	*closers = append(*closers, f)
	st, err := f.Stat()
	if err != nil {
		return generate.Input{}, err
	}
	if !st.Mode().IsRegular() {
		return generate.Input{}, fmt.Errorf("%s %s is not a regular file", what, path)
	}
	return generate.Input{R: f, Size: st.Size()}, nil
}

// tempDirFor keeps temporary data beside the output, on the same disk.
func tempDirFor(out string) string {
	if out == "-" {
		return ""
	}
	return filepath.Dir(out)
}

// buildDelta builds a delta from old to the image in opts.
func buildDelta(e *env, w io.Writer, opts generate.BuildOptions, old, oldKernel, kernel string, partitionSize int64, closers *[]io.Closer) (*payload.Result, error) {
	file := func(path, what string) (generate.File, error) {
		in, err := openInput(path, what, closers)
		if err != nil {
			return generate.File{}, err
		}
		return generate.File{R: in.R.(io.ReaderAt), Size: in.Size}, nil
	}
	d := generate.DeltaBuildOptions{SignatureSizes: opts.SignatureSizes, Sign: opts.Sign}
	d.Workers, d.Progress = opts.Workers, opts.Progress
	d.Log = logTo(e)
	var err error
	if d.Old, err = file(old, "old image"); err != nil {
		return nil, err
	}
	d.New = generate.File{R: opts.Image.R.(io.ReaderAt), Size: opts.Image.Size}
	if d.Old.Size != d.New.Size {
		return nil, withHint(fmt.Errorf("old image %s is %d bytes, the image %d: a delta needs images of the same size", old, d.Old.Size, d.New.Size),
			"both are the first 1 GiB of USR-A")
	}
	if partitionSize != 0 && partitionSize < d.Old.Size {
		return nil, withHint(usagef("--partition-size %d is smaller than the old image %s (%d bytes), which the partition holds", partitionSize, old, d.Old.Size),
			"Flatcar's USR partitions are 1GiB or 2GiB")
	}
	d.PartitionSize = partitionSize
	if kernel != "" {
		d.Kernel = generate.File{R: opts.Kernel.R.(io.ReaderAt), Size: opts.Kernel.Size}
	}
	if oldKernel != "" {
		if kernel == "" {
			return nil, usagef("--old-kernel needs --kernel")
		}
		if d.OldKernel, err = file(oldKernel, "old kernel"); err != nil {
			return nil, err
		}
	}
	return generate.BuildDelta(e.ctx, w, d)
}

// unpackTo unpacks a production image into dir as NAME.usr and NAME.vmlinuz
// (unpack.ToDir), with the checks and progress the flags ask for.
func unpackTo(e *env, u *unpackFlags, image, dir, name string) (string, string, error) {
	usr, kernel, _, err := unpackChecked(e, u, image, dir, name)
	return usr, kernel, err
}

// unpackChecked is unpackTo that also returns what unpacking found (which
// of the image's own checks ran).
func unpackChecked(e *env, u *unpackFlags, image, dir, name string) (string, string, *unpack.Result, error) {
	opts, checks, end, err := u.options(e, image, dir)
	if err != nil {
		return "", "", nil, err
	}
	defer end()
	return unpack.ToDir(e.ctx, image, dir, name, opts, checks)
}
