package main

import (
	"fmt"
	"io"

	"github.com/augen-project/augen/internal/filekind"
	"github.com/augen-project/augen/payload/apply"
	"github.com/augen-project/augen/verify"
)

const payloadApplyUsage = `Usage: augen payload apply PAYLOAD --pubkey PUB.pem... [--old OLD.bin --old-kernel K0]
                           -o NEW.bin [--kernel-out NEW.vmlinuz]

Writes the partition (and, with --kernel-out, the kernel) that update_engine
would write when it installs PAYLOAD: what delta_generator's apply mode was
used for when debugging a delta. It runs every check of "augen payload
verify" first and as it goes (the format, the signature update_engine
checks against a --pubkey key, the client's rules for every operation, the
rebuilt hashes the manifest promises, the kernel against its /usr), and
writes its outputs only if all of them pass: a failed apply leaves nothing.
A delta applies to --old (a USR image, plain or .bz2, or a production
image, unpacked) and --old-kernel; neither is written to (the client
applies in place; augen works on copies in $TMPDIR).

Example:
  augen payload apply delta-from-4459.1.0.gz --pubkey official-v2.pub.pem \
      --old flatcar_production_image-4459.1.0.bin.bz2 -o usr-4459.2.1.bin --kernel-out vmlinuz-4459.2.1
`

// applyOutputs are payload apply's outputs: the rebuilt partition and,
// with --kernel-out, the kernel, written as verification shows them and
// kept only if it passes.
type applyOutputs struct {
	part, kern output
	written    map[string]int64
}

// keep is verify.PayloadOptions.Keep: it copies a checked target out.
func (o *applyOutputs) keep(target string, r io.ReaderAt, n int64) error {
	var w io.Writer
	switch {
	case target == "partition":
		w = o.part
	case target == "KERNEL" && o.kern != nil:
		w = o.kern
	default:
		return nil
	}
	if _, err := io.Copy(w, io.NewSectionReader(r, 0, n)); err != nil {
		return fmt.Errorf("writing the rebuilt %s: %w", target, err)
	}
	o.written[target] = n
	return nil
}

// commit keeps the outputs once everything verified: the partition, and
// the kernel when asked for (the payload must have rebuilt it).
func (o *applyOutputs) commit() error {
	if _, ok := o.written["partition"]; !ok {
		return usagef("the payload rebuilds no partition")
	}
	if o.kern != nil {
		if _, ok := o.written["KERNEL"]; !ok {
			return usagef("--kernel-out: the payload rebuilds no kernel")
		}
	}
	if err := o.part.Commit(); err != nil {
		return err
	}
	if o.kern != nil {
		return o.kern.Commit()
	}
	return nil
}

func payloadApply(e *env, args []string) (err error) {
	fs := newFlags(e, "payload apply", payloadApplyUsage)
	var pubPaths []string
	fs.StringArrayVar(&pubPaths, "pubkey", nil, "a trusted public key `PEM` (repeatable; required)")
	old := fs.String("old", "", "the old USR `image` a delta applies to (plain or .bz2, or a production image, unpacked)")
	oldKernel := fs.String("old-kernel", "", "the old kernel `file` a delta applies to")
	partSize := partitionSizeFlag(fs)
	out := fs.StringP("output", "o", "", "write the rebuilt partition to `path`")
	kernelOut := fs.String("kernel-out", "", "write the rebuilt kernel to `path`")
	uf := sizeOnlyUnpackFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *out == "" {
		return withHint(usagef("expected one payload and -o"), `run "augen payload apply --help"`)
	}
	defer hintKind(&err, fs.Arg(0), filekind.Payload)
	if len(pubPaths) == 0 {
		return withHint(usagef("--pubkey is required: a payload is applied only once it is verified against the key clients trust"),
			"that key is /usr/share/update_engine/update-payload-key.pub.pem on the clients")
	}
	if *kernelOut != "" && *kernelOut == *out {
		return usagef("-o and --kernel-out name the same file")
	}
	partition, err := partSize.bytes(*old)
	if err != nil {
		return err
	}
	oldName, oldKernelName := *old, *oldKernel
	pubs, in, size, done, err := payloadInputs(e, uf, pubPaths, old, oldKernel, fs.Arg(0))
	if err != nil {
		return err
	}
	defer done()
	part, err := createOutput(e, *out)
	if err != nil {
		return err
	}
	defer part.Abort()
	var kern output
	if *kernelOut != "" {
		if kern, err = createOutput(e, *kernelOut); err != nil {
			return err
		}
		defer kern.Abort()
	}
	outs := &applyOutputs{part: part, kern: kern, written: map[string]int64{}}
	progress, endProgress := showProgress(e, "")
	vr, err := verify.Payload(e.ctx, in, size, pubs, verify.PayloadOptions{
		Sources: apply.Sources{Partition: *old, PartitionSize: partition, Kernel: *oldKernel, Progress: progress,
			PartitionName: oldName, KernelName: oldKernelName},
		Keep: outs.keep,
	})
	endProgress()
	if err != nil {
		return err
	}
	if err := outs.commit(); err != nil {
		return err
	}
	for _, r := range vr.Rebuilt {
		where := "not written"
		switch {
		case r.Name == "partition":
			where = "written to " + *out
		case r.Name == "KERNEL" && kern != nil:
			where = "written to " + *kernelOut
		case r.Name == "KERNEL":
			where = "not written (give --kernel-out)"
		}
		fmt.Fprintf(e.stderr, "%s: rebuilt %-10s %d bytes, sha256 %x, %s\n", programName, r.Name, r.Size, r.SHA256, where)
	}
	return nil
}
