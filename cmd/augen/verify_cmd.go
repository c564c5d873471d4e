package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/augen-project/augen/internal/filekind"
	"github.com/augen-project/augen/release"
	"github.com/augen-project/augen/verify"
)

const verifyUsage = `Usage: augen verify --policy policy.json release.tar [--channel dev-channel]
                    [--old VERSION=USR.bin,VMLINUZ]... [--image IMAGE.bin.bz2] [--json]

Checks a release bundle against a trust policy, all of it, every time:
  - the DSSE envelope: signed by at least the policy's threshold of
    distinct trusted bundle keys (and, with --channel, as the channel needs);
  - the release statement: schema, board, every payload's size and digests;
  - every payload: the format's rules, the signature update_engine checks
    (version 2) by a trusted payload key, and a simulated apply that must
    rebuild the partition and kernel the manifest and the statement name
    (deltas onto the old release given with --old), and whose /usr must
    declare the statement's version (/usr/lib/os-release VERSION=);
  - with --image: that the full payload was built from exactly that CI
    image (augen rebuilds it and compares the signed-region hash).
Exit 0 valid, 3 invalid, with every failed check listed.

Example:
  augen verify --policy policy.json release.tar --channel beta
`

func verifyCmd(e *env, args []string) (err error) {
	fs := newFlags(e, "verify", verifyUsage)
	policyPath := fs.String("policy", "", "the trust policy `file` (augen policy init)")
	channel := fs.String("channel", "", "check that the signers may point this `channel` at the release")
	var olds []string
	fs.StringArrayVar(&olds, "old", nil, "the old release a delta applies to, as `VERSION=USR.bin,VMLINUZ`, VERSION=IMAGE.bin.bz2 or VERSION=FOLDER (repeatable)")
	image := fs.String("image", "", "check the full payload was built from this CI `image`")
	uf := addUnpackFlags(fs)
	allowUnapplied := fs.Bool("allow-unapplied-deltas", false, "accept a delta without --old for its version, checked but not applied")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *policyPath == "" {
		return withHint(usagef("expected one bundle and --policy"), `run "augen verify --help"`)
	}
	defer hintKind(&err, fs.Arg(0), filekind.Tar)
	trust, err := loadPolicy(*policyPath)
	if err != nil {
		return err
	}
	opts := verify.Options{Channel: *channel, TempDir: os.TempDir(), AllowUnappliedDeltas: *allowUnapplied}
	var doneOld func()
	if opts.Old, doneOld, err = oldReleases(e, uf, olds); err != nil {
		return err
	}
	defer doneOld()
	in, size, closeIn, err := openSeekable(e, fs.Arg(0), bundleSpoolLimit)
	if err != nil {
		return err
	}
	defer closeIn()
	var endProgress func()
	opts.Progress, endProgress = showProgress(e, "")
	_, rep, verr := verify.Bundle(e.ctx, in, size, trust, opts)
	endProgress()
	if rep == nil {
		return verr
	}
	if verr == nil && *image != "" {
		uo, checks, end, err := uf.options(e, *image, "")
		if err != nil {
			return err
		}
		verr = verify.BuiltFrom(e.ctx, rep, *image, uo, checks)
		end()
	}
	if *asJSON {
		if verr != nil && len(rep.Failures) == 0 {
			rep.Failures = append(rep.Failures, verify.Failure{Member: fs.Arg(0), Check: "verify", Error: verr.Error()})
			rep.Valid = false
		}
		if err := writeJSON(e.stdout, rep); err != nil {
			return err
		}
	} else if verr == nil {
		printVerified(e, fs.Arg(0), *image, trust, rep)
	}
	if verr != nil && !*asJSON {
		return verifyFailed(e, fs.Arg(0), rep, verr)
	}
	return verr
}

// printVerified prints verify's report of a bundle that verified.
func printVerified(e *env, name, image string, trust *verify.Trust, rep *verify.Report) {
	fmt.Fprintf(e.stdout, "%s: OK: %s %s, signed by %d trusted key(s)\n", name, rep.Board, rep.Version, len(rep.BundleSigners))
	for _, id := range rep.BundleSigners {
		fmt.Fprintf(e.stdout, "  signed by %s\n", trust.Label(id))
	}
	if rv := rep.Statement.Predicate.RequiresVersion; rv != "" {
		fmt.Fprintf(e.stdout, "  requires machines at %s or later (older ones need a floor first)\n", rv)
	}
	for _, p := range rep.Payloads {
		how := "rebuilt"
		if !p.Applied {
			how = "checked, NOT applied (--allow-unapplied-deltas)"
		}
		fmt.Fprintf(e.stdout, "  %-34s %-5s %s, payload key %s\n", p.Name, p.Kind, how, trust.Label(p.SignedBy))
		if p.PartitionSize > 0 {
			fmt.Fprintf(e.stdout, "  %-34s for machines whose USR partition is %s\n", "", humanBytes(uint64(p.PartitionSize)))
		}
		if p.OSVersion != "" {
			fmt.Fprintf(e.stdout, "  %-34s installs release %s (its /usr says so)\n", "", p.OSVersion)
		}
		if p.VerityRootHash != "" {
			fmt.Fprintf(e.stdout, "  %-34s boots it: an %s kernel carrying its /usr's dm-verity root hash %s\n", "", p.KernelArch, p.VerityRootHash[:16])
		}
		if p.KernelNote != "" {
			fmt.Fprintf(e.stdout, "  %-34s %s\n", "", p.KernelNote)
		}
		if sb := p.SecureBoot; sb != nil {
			trusted := "no Secure Boot certificate in the policy to check it against"
			if sb.TrustedBy != "" {
				trusted = "trusted by the policy's " + sb.TrustedBy[:16]
			}
			fmt.Fprintf(e.stdout, "  %-34s Secure Boot: signed by %s (%s), %s\n", "", sb.Subject, sb.Fingerprint[:16], trusted)
		} else if p.SecureBootNote != "" {
			fmt.Fprintf(e.stdout, "  %-34s Secure Boot: %s\n", "", p.SecureBootNote)
		}
		if x := p.Sysext; x != nil {
			fmt.Fprintf(e.stdout, "  %-34s sysext of this /usr: verity root hash %s signed by its certificate %s, %s for %s\n", "", x.RootHash[:16], x.Certificate[:16], x.ExtensionRelease, x.Version)
		} else if p.SysextNote != "" {
			fmt.Fprintf(e.stdout, "  %-34s %s\n", "", p.SysextNote)
		}
		if p.VersionNote != "" {
			fmt.Fprintf(e.stdout, "  %-34s %s\n", "", p.VersionNote)
		}
	}
	if image != "" {
		fmt.Fprintf(e.stdout, "  built from %s: yes\n", image)
	}
}

// verifyFailed prints each failed check and its hint, and returns the
// error verify exits with.
func verifyFailed(e *env, name string, rep *verify.Report, verr error) error {
	for _, fl := range rep.Failures {
		fmt.Fprintf(e.stderr, "%s: failed: %s\n", programName, fl.String())
		if fl.Hint != "" {
			fmt.Fprintf(e.stderr, "%s: hint: %s\n", programName, fl.Hint)
		}
	}
	if len(rep.Failures) == 0 {
		// Not a check of the bundle (--image could not be read or
		// unpacked): the error says why, and its exit status is its own.
		return verr
	}
	err := fmt.Errorf("%w: %d check(s) failed", verify.ErrVerification, len(rep.Failures))
	if rep.FormatError() != nil {
		// The file is no bundle: say what it is.
		if k, derr := filekind.DetectFile(name); derr == nil && k != filekind.Tar && k != filekind.Unknown {
			return withHint(err, fmt.Sprintf("%s is %s", name, k))
		}
	}
	return err
}

// oldReleases reads --old VERSION=IMAGE[,VMLINUZ] flags (verify, push):
// the previous releases a bundle's deltas apply to, each a USR image
// (plain or .bz2) with its kernel, or a production image. done removes
// what was unpacked.
func oldReleases(e *env, uf *unpackFlags, olds []string) (map[string]verify.Old, func(), error) {
	m := map[string]verify.Old{}
	var dones []func()
	done := func() {
		for _, d := range dones {
			d()
		}
	}
	for _, o := range olds {
		v, paths, ok := strings.Cut(o, "=")
		usr, kernel, _ := strings.Cut(paths, ",")
		if !ok || usr == "" || v == "" {
			done()
			return nil, nil, usagef("--old %q: want VERSION=IMAGE (a production image), VERSION=USR.bin,VMLINUZ or VERSION=FOLDER (a release folder)", o)
		}
		if st, err := os.Stat(usr); err == nil && st.IsDir() && kernel == "" {
			f, err := release.ReadFolder(usr)
			if err != nil {
				done()
				return nil, nil, usagef("--old %s: %v", v, err)
			}
			usr, kernel = f.USR, f.Kernel
		}
		if _, dup := m[v]; dup {
			done()
			return nil, nil, usagef("--old %s given twice", v)
		}
		usrName, kernelName := usr, kernel
		usr, kernel, d, err := usrInput(e, uf, "--old "+v, usr, kernel, os.TempDir())
		if err != nil {
			done()
			return nil, nil, err
		}
		dones = append(dones, d)
		if kernelName == "" {
			kernelName = usrName + " (its kernel)"
		}
		m[v] = verify.Old{Partition: usr, Kernel: kernel, PartitionName: usrName, KernelName: kernelName}
	}
	return m, done, nil
}
