package main

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/augen-project/augen/internal/filekind"
	"github.com/augen-project/augen/internal/tempfile"
	"github.com/augen-project/augen/unpack"
)

// usrInput turns an image a user gives where a USR partition image is
// read (--old of verify and payload verify, --image of payload inspect)
// into a plain USR image, as payload build takes its inputs: a plain one
// as it is, a bzip2 one decoded, a production disk image (plain or bzip2)
// unpacked (USR-A and, when kernel is "", its kernel; with a kernel given,
// the image's verity hash is checked against that one). It returns the
// USR image and the kernel to use with it; done removes what was made in
// dir. Another kind of file is a usage error saying what it is.
func usrInput(e *env, uf *unpackFlags, flag, path, kernel, dir string) (usr, k string, done func(), err error) {
	plain, undo, err := unpack.PlainUSRImage(e.ctx, path, dir, maxUSRImage, func(p string) {
		fmt.Fprintf(e.stderr, "decompressing %s (bzip2) to a temporary file\n", p)
	})
	var ke *unpack.KindError
	switch {
	case err == nil:
		return plain, kernel, undo, nil
	case errors.As(err, &ke) && ke.Kind == filekind.DiskImage:
		// A production image: unpacked below.
	case errors.As(err, &ke):
		return "", "", nil, withHint(usagef("%s %s is %s", flag, path, ke.Kind), flag+" takes a USR image (plain or .bz2) or a production image (.bin or .bin.bz2)")
	default:
		return "", "", nil, fmt.Errorf("%s: %w", flag, err)
	}
	tmp, err := tempfile.MkdirTemp(dir, ".augen-unpack-*")
	if err != nil {
		return "", "", nil, err
	}
	usr, uk, err := unpackTo(e, uf.plain(kernel), path, tmp, "old")
	if err != nil {
		tempfile.RemoveAll(tmp)
		return "", "", nil, fmt.Errorf("%s: %w", flag, err)
	}
	if kernel == "" {
		kernel = uk
	}
	return usr, kernel, func() { tempfile.RemoveAll(tmp) }, nil
}

// plain is u for an image other than the one --signature and --digests
// speak of: their checks left out, the kernel set to path ("" for the
// image's own).
func (u *unpackFlags) plain(kernel string) *unpackFlags {
	c := *u.withKernel(kernel)
	none := ""
	c.signature, c.signingKey, c.digests = &none, &none, &none
	return &c
}

// sizeOnlyUnpackFlags are unpack's defaults with --usr-size taken from
// fs, for commands that unpack a production image given as an input.
func sizeOnlyUnpackFlags(fs interface {
	String(name, value, usage string) *string
}) *unpackFlags {
	none, kp, full := "", unpack.DefaultKernelPath, false
	return &unpackFlags{
		usrSize:    fs.String("usr-size", "1GiB", "when a production image is given, how much of its USR-A is the USR image (bytes, or with KiB/MiB/GiB)"),
		kernelPath: &kp, fullCheck: &full, digests: &none, signature: &none, signingKey: &none,
	}
}

// partitionSize is --partition-size of payload verify and payload apply:
// the machine's USR partition a delta is applied on.
type partitionSize struct{ s *string }

func partitionSizeFlag(fs *pflag.FlagSet) partitionSize {
	return partitionSize{fs.String("partition-size", "", "with --old: apply the delta on a USR partition of `SIZE` holding the old image, the rest zeros, as machines have it (bytes, or with KiB/MiB/GiB; default: the size the delta was made for, or the image's if larger)")}
}

// bytes is the size given (0: none), checked to go with --old.
func (p partitionSize) bytes(old string) (uint64, error) {
	if *p.s == "" {
		return 0, nil
	}
	if old == "" {
		return 0, withHint(usagef("--partition-size goes with --old"), "it is the size of the partition the old image sits in on a machine")
	}
	n, err := parseSize(*p.s)
	if err != nil {
		return 0, withHint(err, "e.g. --partition-size 2GiB (Flatcar's machines installed since 2025-09) or 1GiB")
	}
	return uint64(n), nil
}
