package main

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/augen-project/augen/bundle"

	"github.com/augen-project/augen/internal/filekind"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/apply"
	"github.com/augen-project/augen/verify"
)

const payloadVerifyUsage = `Usage: augen payload verify PAYLOAD --pubkey PUB.pem... [--old OLD.bin --old-kernel K0] [--image USR.bin] [--kernel VMLINUZ]

Checks a payload as update_engine would, and more:
  - every rule of the format (header, manifest, contiguous data, every
    operation's SHA-256, the signatures blob, no trailing bytes);
  - the signature update_engine checks (version 2, the last one) verifies
    with one of the --pubkey keys (with --all-signatures, every signature
    must verify with one of them);
  - a simulated apply, in place, onto a copy of --old for a delta, rebuilds
    the partition and the kernel with the hashes the manifest promises;
  - with --image / --kernel, the rebuilt files also equal those files.

Every rule is update_engine's, read in its source and checked against its
own code (payload/apply, doc/payload-format.md §3); where augen is stricter
than the client, the error says so and names the rule (§3.4).

With --extra, the payload is an extra (oem-*.gz, flatcar-*.gz: a
systemd-sysext image), which machines install with ue-rs, not
update_engine: it is checked by ue-rs's rules (one extent per operation,
REPLACE and REPLACE_BZ only, data neither padded nor cut) and --image
compares the image ue-rs would write.

Exit status 3 means the payload failed verification.

Example:
  augen payload verify flatcar_production_update.gz --pubkey official-v2.pub.pem \
      --image flatcar_production_update.bin --kernel flatcar_production_image.vmlinuz
`

// verifyResult is the --json output of payload verify.
type verifyResult struct {
	Valid   bool             `json:"valid"`
	Error   string           `json:"error,omitempty"`
	Summary *payload.Summary `json:"summary"`
	Rebuilt []apply.Rebuilt  `json:"rebuilt"`
	// PartitionSize is the USR partition a delta was applied on.
	PartitionSize uint64 `json:"partition_size,omitempty"`
}

func payloadVerify(e *env, args []string) (err error) {
	fs := newFlags(e, "payload verify", payloadVerifyUsage)
	var pubPaths []string
	fs.StringArrayVar(&pubPaths, "pubkey", nil, "a trusted public key `PEM` (repeatable; required)")
	old := fs.String("old", "", "the old USR `image` a delta applies to (plain or .bz2, or a production image, unpacked)")
	oldKernel := fs.String("old-kernel", "", "the old kernel `file` a delta applies to")
	partSize := partitionSizeFlag(fs)
	image := fs.String("image", "", "check the rebuilt partition equals this `image`")
	kernel := fs.String("kernel", "", "check the rebuilt kernel equals this `file`")
	unsigned := fs.Bool("unsafe-allow-unsigned", false, "check an unsigned payload (no signature check at all)")
	allSigs := fs.Bool("all-signatures", false, "require every signature, not only the one update_engine checks, to verify with a --pubkey key")
	uf := sizeOnlyUnpackFlags(fs)
	extra := fs.Bool("extra", false, "an extra payload (systemd-sysext image): check it by ue-rs's rules, which install extras")
	asJSON := fs.Bool("json", false, "print JSON to stdout")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return withHint(usagef("expected one payload, got %d arguments", fs.NArg()), `run "augen payload verify --help"`)
	}
	defer hintKind(&err, fs.Arg(0), filekind.Payload)
	if *asJSON {
		// A script reading --json gets a result on failure too.
		defer func() {
			var u usageError
			if err != nil && !errors.As(err, &u) {
				writeJSON(e.stdout, verifyResult{Valid: false, Error: oneLine(err.Error())})
			}
		}()
	}
	if *extra && (*old != "" || *oldKernel != "" || *kernel != "") {
		return usagef("--extra takes no --old, --old-kernel or --kernel: ue-rs installs extras whole, with no kernel")
	}
	if len(pubPaths) == 0 && !*unsigned {
		return withHint(usagef("--pubkey is required: a payload is verified against the key clients trust"),
			"that key is /usr/share/update_engine/update-payload-key.pub.pem on the clients")
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
	// Targets are simulated in $TMPDIR: a 1 GiB image needs 1 GiB there.
	progress, endProgress := showProgress(e, "")
	defer endProgress()
	vr, err := verify.Payload(e.ctx, in, size, pubs, verify.PayloadOptions{
		Sources: apply.Sources{Partition: *old, PartitionSize: partition, Kernel: *oldKernel, Progress: progress,
			PartitionName: oldName, KernelName: oldKernelName},
		UnsafeAllowUnsigned: *unsigned,
		AllSignatures:       *allSigs,
		WantPartition:       *image,
		WantKernel:          *kernel,
		Extra:               *extra,
	})
	if err != nil {
		return err
	}
	s, rebuilt := vr.Summary, vr.Rebuilt
	res := verifyResult{Valid: true, Summary: s}
	res.Rebuilt = rebuilt
	if s.OldPartition != nil {
		res.PartitionSize = appliedPartition(*old, partition, s.OldPartition.Size)
	}
	if *asJSON {
		return writeJSON(e.stdout, res)
	}
	printPayloadVerified(e, fs.Arg(0), *old, oldName, res)
	return nil
}

// printPayloadVerified prints payload verify's report of a payload that
// verified.
func printPayloadVerified(e *env, name, oldPath, oldName string, res verifyResult) {
	fmt.Fprintf(e.stdout, "%s: OK (%s payload", name, res.Summary.Kind)
	if len(res.Summary.Signatures) == 0 {
		fmt.Fprintf(e.stdout, ", UNSIGNED")
	}
	for _, sig := range res.Summary.Signatures {
		if sig.CheckedByClient {
			fmt.Fprintf(e.stdout, ", signed by %s", sig.KeyFingerprint)
		}
	}
	fmt.Fprintln(e.stdout, ")")
	if res.PartitionSize > 0 {
		rest := ""
		if st, err := os.Stat(oldPath); err == nil && uint64(st.Size()) < res.PartitionSize {
			rest = ", the image then zeros"
		}
		fmt.Fprintf(e.stdout, "  applied on %s as a USR partition of %s%s\n", oldName, humanBytes(res.PartitionSize), rest)
	}
	for _, r := range res.Rebuilt {
		fmt.Fprintf(e.stdout, "  rebuilt %-10s %d bytes, sha256 %x\n", r.Name, r.Size, r.SHA256)
	}
}

// appliedPartition is the partition apply.Simulate applied a delta on:
// the size given, or the larger of the old image and the delta's
// old_partition_info.size.
func appliedPartition(old string, given, made uint64) uint64 {
	if given > 0 {
		return given
	}
	st, err := os.Stat(old)
	if err != nil {
		return made
	}
	return max(uint64(st.Size()), made)
}

// humanBytes is n in bytes, with its size in GiB or MiB when whole.
func humanBytes(n uint64) string {
	if l := bundle.SizeLabel(int64(n)); strings.HasSuffix(l, "iB") {
		return fmt.Sprintf("%d bytes (%s %s)", n, l[:len(l)-3], l[len(l)-3:])
	}
	return fmt.Sprintf("%d bytes", n)
}

// payloadInputs reads what payload verify and payload apply take: the
// public keys, the old USR image and kernel a delta applies to (a
// production image unpacked; *old and *oldKernel are set to the files to
// use), and the payload, seekable. done removes what was made.
func payloadInputs(e *env, uf *unpackFlags, pubPaths []string, old, oldKernel *string, path string) (pubs []crypto.PublicKey, in io.ReaderAt, size int64, done func(), err error) {
	var dones []func()
	done = func() {
		for i := len(dones) - 1; i >= 0; i-- {
			dones[i]()
		}
	}
	if pubs, err = loadPubkeys(pubPaths); err != nil {
		return nil, nil, 0, nil, err
	}
	if *old != "" {
		usr, k, d, err := usrInput(e, uf, "--old", *old, *oldKernel, os.TempDir())
		if err != nil {
			return nil, nil, 0, nil, err
		}
		dones = append(dones, d)
		*old, *oldKernel = usr, k
	}
	in, size, closeIn, err := openSeekable(e, path, payloadSpoolLimit)
	if err != nil {
		done()
		return nil, nil, 0, nil, err
	}
	dones = append(dones, closeIn)
	return pubs, in, size, done, nil
}
