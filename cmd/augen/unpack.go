package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/augen-project/augen/internal/atomicfile"
	"github.com/augen-project/augen/unpack"
)

const unpackUsage = `Usage: augen unpack IMAGE.bin[.bz2] -o DIR [--signature IMAGE.sig --signing-key KEY.asc]
                    [--digests FILE.DIGESTS] [--usr-size SIZE] [--kernel FILE] [--full-check] [--json]

Extracts what an update payload needs from a Flatcar production image, as CI
hands it over (flatcar_production_image.bin.bz2, or the plain .bin), in one
streaming pass, and checks it on the way:
  - the GPT's CRCs (the backup table is used, with a warning, when the
    primary is damaged);
  - DIR/usr.bin: the first GiB of USR-A (--usr-size to change);
  - DIR/vmlinuz: flatcar/vmlinuz-a from the EFI-SYSTEM FAT filesystem (or
    --kernel FILE, CI's separate flatcar_production_image.vmlinuz);
  - the USR image's dm-verity root hash must be the one the kernel carries:
    otherwise the update would not boot;
  - with --digests, the SHA-512 and SHA-1 lines CI publishes must match;
  - with --signature and --signing-key, a detached OpenPGP signature of the
    compressed image is verified before anything is decoded.
DIR/image.json records the partition table, sizes, hashes, the verity root
and the input's hashes. Decoding stops after USR-A unless --full-check (every
bzip2 block of the whole image, and output past the declared disk size
refused). Nothing is left in DIR when a check fails.

Example:
  augen unpack flatcar_production_image.bin.bz2 -o unpacked \
      --signature flatcar_production_image.bin.bz2.sig --signing-key buildbot.asc
`

func unpackCmd(e *env, args []string) error {
	fs := newFlags(e, "unpack", unpackUsage)
	out := fs.StringP("output", "o", "", "write usr.bin, vmlinuz and image.json into `dir`")
	u := addUnpackFlags(fs)
	u.kernel = fs.String("kernel", "", "take the kernel from this `file` (CI's flatcar_production_image.vmlinuz) instead of EFI-SYSTEM")
	asJSON := fs.Bool("json", false, "print image.json to stdout too")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *out == "" {
		return withHint(usagef("expected one image and -o DIR"), `run "augen unpack --help"`)
	}
	created := false
	if _, err := os.Stat(*out); os.IsNotExist(err) {
		if err := os.Mkdir(*out, 0o755); err != nil {
			return err
		}
		created = true
	}
	ok := false
	defer func() {
		if !ok && created {
			os.Remove(*out)
		}
	}()
	usr, err := atomicfile.Create(filepath.Join(*out, "usr.bin"))
	if err != nil {
		return err
	}
	defer usr.Abort()
	res, kernel, err := u.run(e, fs.Arg(0), usr.File, *out)
	if err != nil {
		return err
	}
	kf, err := atomicfile.Create(filepath.Join(*out, "vmlinuz"))
	if err != nil {
		return err
	}
	defer kf.Abort()
	if _, err := kf.Write(kernel); err != nil {
		return err
	}
	jf, err := atomicfile.Create(filepath.Join(*out, "image.json"))
	if err != nil {
		return err
	}
	defer jf.Abort()
	if err := writeJSON(jf, res); err != nil {
		return err
	}
	for _, f := range []*atomicfile.File{usr, kf, jf} {
		if err := f.Commit(); err != nil {
			return err
		}
	}
	ok = true
	if *asJSON {
		return writeJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "%s: OK\n  usr.bin   %d bytes of USR-A, sha256 %s\n  vmlinuz   %d bytes from %s, sha256 %s\n  verity    %s root %s matches the kernel\n  input     %d bytes, sha256 %s\n",
		fs.Arg(0), res.USR.Size, res.USR.SHA256, res.Kernel.Size, res.KernelFrom, res.Kernel.SHA256,
		res.Verity.Filesystem, res.Verity.RootHash, res.Input.Size, res.Input.SHA256)
	if c := imageChecks(res); c != "" {
		fmt.Fprintf(e.stdout, "  checks    %s\n", c)
	}
	return nil
}

// imageChecks says which of a CI image's own checks ran ("" for none).
func imageChecks(res *unpack.Result) string {
	var ran []string
	if res.SignedBy != "" {
		ran = append(ran, "OpenPGP signature by "+res.SignedBy+" verified")
	}
	if res.Digests != nil {
		ran = append(ran, res.Digests.String())
	}
	return strings.Join(ran, ", ")
}

// unpackFlags are the flags unpack and payload build --from-image share.
type unpackFlags struct {
	usrSize    *string
	kernel     *string
	kernelPath *string
	fullCheck  *bool
	digests    *string
	signature  *string
	signingKey *string
}

func addUnpackFlags(fs interface {
	String(name, value, usage string) *string
	Bool(name string, value bool, usage string) *bool
}) *unpackFlags {
	return &unpackFlags{
		usrSize:    fs.String("usr-size", "1GiB", "how much of USR-A is the USR image (bytes, or with KiB/MiB/GiB)"),
		kernelPath: fs.String("kernel-path", unpack.DefaultKernelPath, "the kernel's `path` in EFI-SYSTEM"),
		fullCheck:  fs.Bool("full-check", false, "decode and check the whole image, not just up to USR-A"),
		digests:    fs.String("digests", "", "check the image against CI's `DIGESTS` file (SHA-512, SHA-1)"),
		signature:  fs.String("signature", "", "verify this detached OpenPGP `signature` of the image first"),
		signingKey: fs.String("signing-key", "", "the OpenPGP public `key` the signature must come from (e.g. Flatcar's buildbot key)"),
	}
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, usagef("bad size %q (bytes, or a number with KiB/MiB/GiB)", s)
	}
	return n * mult, nil
}

// withKernel is u with --kernel set to path ("" for the image's own).
func (u *unpackFlags) withKernel(path string) *unpackFlags {
	c := *u
	c.kernel = &path
	return &c
}

// options turns the flags into unpack's options and checks; end finishes
// the progress line.
func (u *unpackFlags) options(e *env, image, tmpDir string) (opts unpack.Options, checks unpack.Checks, end func(), err error) {
	end = func() {}
	size, err := parseSize(*u.usrSize)
	if err != nil {
		return opts, checks, end, err
	}
	opts = unpack.Options{USRSize: size, KernelPath: *u.kernelPath, FullCheck: *u.fullCheck, TempDir: tmpDir,
		Log: logTo(e)}
	if u.kernel != nil && *u.kernel != "" {
		if opts.Kernel, err = os.ReadFile(*u.kernel); err != nil {
			return opts, checks, end, err
		}
		if len(opts.Kernel) == 0 {
			return opts, checks, end, fmt.Errorf("%s is empty", *u.kernel)
		}
	}
	switch {
	case *u.signature != "" && *u.signingKey == "":
		return opts, checks, end, withHint(usagef("--signature needs --signing-key, the OpenPGP key it must come from"), "Flatcar's is the buildbot key, F88CFEDEFF29A5B4D9523864E25D9AED0593B34A")
	case *u.signingKey != "" && *u.signature == "" && (*u.digests == "" || !unpack.IsClearsigned(*u.digests)):
		return opts, checks, end, withHint(usagef("--signing-key checks --signature or a signed DIGESTS file (--digests DIGESTS.asc), and neither was given"), "give the image's .sig with --signature")
	}
	opts.Progress, end = showProgress(e, "unpacking "+filepath.Base(image))
	return opts, unpack.Checks{Signature: *u.signature, SigningKey: *u.signingKey, Digests: *u.digests}, end, nil
}

// run unpacks image into usr (a file in tmpDir's filesystem).
func (u *unpackFlags) run(e *env, image string, usr *os.File, tmpDir string) (*unpack.Result, []byte, error) {
	opts, checks, end, err := u.options(e, image, tmpDir)
	if err != nil {
		return nil, nil, err
	}
	defer end()
	return unpack.File(e.ctx, image, usr, opts, checks)
}
