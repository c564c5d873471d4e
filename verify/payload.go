package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/authenticode"
	"github.com/augen-project/augen/internal/ctxio"
	"github.com/augen-project/augen/internal/filekind"
	"github.com/augen-project/augen/internal/osrelease"
	"github.com/augen-project/augen/internal/sysext"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/apply"
)

// PayloadOptions tune Payload.
type PayloadOptions struct {
	// Sources are the old images a delta applies to, and where the
	// simulated targets live.
	Sources apply.Sources
	// UnsafeAllowUnsigned accepts a payload without signatures (its
	// rules and its apply are still checked; a signature that is there
	// must still verify).
	UnsafeAllowUnsigned bool
	// AllSignatures requires every signature to verify with one of the
	// keys, not only the one update_engine checks (version 2).
	AllSignatures bool
	// WantPartition and WantKernel, if set, name files the rebuilt
	// partition and kernel must equal.
	WantPartition, WantKernel string
	// Keep, if set, is shown each rebuilt target ("partition", "KERNEL")
	// once its hash matched, to copy it out (payload apply); an error
	// from it fails the verification. What it wrote is only good if
	// Payload then returns no error: the checks after it (the kernel
	// against the /usr, the file unchanged) still run.
	Keep func(target string, r io.ReaderAt, size int64) error
	// Extra verifies an extra payload (a systemd-sysext image) by the
	// rules of ue-rs, which installs extras (apply.SimulateExtra); the
	// rebuilt image is then named "image", and WantPartition compares it.
	Extra bool
	// SecureBootCerts: the rebuilt kernel must be signed for Secure Boot
	// by one of them (or a key they certify); RequireSecureBoot refuses
	// an unsigned kernel without them. PayloadResult.SecureBoot names the
	// signer of a signed kernel either way.
	SecureBootCerts   []*x509.Certificate
	RequireSecureBoot bool
	// Host, for an extra, is the /usr its sysext image is checked against
	// (PayloadResult.Host of the release's full payload); an extra that is
	// a disk image is then checked as a sysext (PayloadResult.Sysext).
	Host *Host
	// ExtraName is the extra's image name (oem-azure for oem-azure.gz):
	// its extension-release file is named after it.
	ExtraName string
}

// Host is the /usr of a release as sysexts are checked against it: its
// os-release and its /usr/lib/verity.d certificates.
type Host struct{ h *sysext.Host }

// PayloadResult is what Payload found.
type PayloadResult struct {
	Summary *payload.Summary
	Rebuilt []apply.Rebuilt
	// OSVersion is the release version the rebuilt /usr declares ("" if
	// it declares none); KernelArch the rebuilt kernel's architecture
	// ("amd64", "arm64"; "" for a kernel of neither kind), whose dm-verity
	// root hash was checked against the rebuilt /usr's.
	OSVersion, KernelArch string
	// SecureBoot is the rebuilt kernel's checked signature (nil:
	// unsigned); Host the rebuilt /usr (full payloads), nil when it holds
	// no file system augen reads; Sysext what an extra's sysext image was
	// checked to be (nil: no Host given, or no disk image).
	SecureBoot *bundle.SecureBoot
	Host       *Host
	Sysext     *bundle.Sysext
}

// Payload verifies one payload file, authenticating before parsing deeper:
//
//  1. the reader's rules over the whole file (header and manifest within
//     fixed limits, every operation's data against its SHA-256, the
//     signatures blob, no trailing bytes) and the signatures against pubs
//     — nothing is decompressed, patched or written in this pass;
//  2. only then the simulated apply, which reads the file again and must
//     see the same signed hash (the file may not change in between).
//
// src must be read twice; a pipe has to be spooled first.
func Payload(ctx context.Context, src io.ReaderAt, size int64, pubs []crypto.PublicKey, opts PayloadOptions) (*PayloadResult, error) {
	// The files the rebuilt targets are compared with are hashed while
	// the payload is checked and applied (the check's pass reads and
	// hashes on one core), not after.
	part := "partition"
	if opts.Extra {
		part = "image"
	}
	hctx, cancel := context.WithCancel(ctx)
	var wants []*wantFile
	for _, w := range []wantFile{{path: opts.WantPartition, target: part}, {path: opts.WantKernel, target: "KERNEL"}} {
		if w.path != "" {
			wants = append(wants, w.hash(hctx))
		}
	}
	defer func() {
		cancel()
		for _, w := range wants {
			<-w.done
		}
	}()
	s, err := payload.Check(ctxio.Reader(ctx, io.NewSectionReader(src, 0, size)), pubs)
	if err != nil {
		return nil, err
	}
	if !opts.UnsafeAllowUnsigned || len(s.Signatures) > 0 {
		check := s.CheckClientSignature
		if opts.AllSignatures {
			check = s.CheckSignature
		}
		if err := check(); err != nil {
			return nil, err
		}
	}
	// The second pass needs the signed hash, not Omaha's SHA-1 again.
	pr2, err := payload.NewReader(ctxio.Reader(ctx, io.NewSectionReader(src, 0, size)), &payload.ReaderOptions{NoSHA1: true})
	if err != nil {
		return nil, err
	}
	var rebuilt []apply.Rebuilt
	res := &PayloadResult{Summary: s}
	var usr io.ReaderAt
	var usrSize int64
	var kernelErr error
	sources := opts.Sources
	var keepErr error
	keep := func(target string, r io.ReaderAt, size int64) {
		if opts.Keep != nil && keepErr == nil {
			keepErr = opts.Keep(target, r, size)
		}
	}
	sources.InspectPartition = func(r io.ReaderAt, size int64) {
		usr, usrSize = r, size
		if v, _, err := osrelease.Version(ctx, r, size); err == nil {
			res.OSVersion = v
		}
		if v, _, err := osrelease.Board(ctx, r, size); err == nil {
			if h, err := sysext.ReadHost(ctx, r, size, v); err == nil {
				res.Host = &Host{h}
			}
		}
		keep("partition", r, size)
	}
	var sbErr, sysextErr error
	sources.InspectKernel = func(r io.ReaderAt, size int64) {
		res.KernelArch, _, kernelErr = kernelMatchesUsr(usr, usrSize, r, size)
		if res.Host == nil && usr != nil && res.KernelArch != "" {
			if h, err := sysext.ReadHost(ctx, usr, usrSize, BoardOfArch(res.KernelArch)); err == nil {
				res.Host = &Host{h}
			}
		}
		res.SecureBoot, sbErr = secureBoot(r, size, opts.SecureBootCerts, opts.RequireSecureBoot)
		keep("KERNEL", r, size)
	}
	opts.Sources = sources
	if opts.Extra {
		var img apply.Rebuilt
		inspect := func(r io.ReaderAt, size int64) {
			if opts.Host != nil && isDisk(r) {
				var si *sysext.Image
				if si, sysextErr = sysext.Check(ctx, r, size, opts.ExtraName, opts.Host.h); sysextErr == nil {
					res.Sysext = &bundle.Sysext{RootHash: si.RootHash, Certificate: si.Certificate, ExtensionRelease: si.ExtensionRelease, Version: si.Version}
				}
			}
			keep("image", r, size)
		}
		img, err = apply.SimulateExtra(ctx, pr2, apply.ExtraOptions{TempDir: opts.Sources.TempDir, Unsigned: opts.UnsafeAllowUnsigned, Inspect: inspect})
		rebuilt = []apply.Rebuilt{img}
	} else {
		rebuilt, err = apply.Simulate(ctx, pr2, opts.Sources)
	}
	if err != nil {
		return nil, err
	}
	if kernelErr != nil {
		return nil, fmt.Errorf("%w: %w", ErrVerification, kernelErr)
	}
	if sbErr != nil {
		return nil, fmt.Errorf("%w: %w", ErrVerification, sbErr)
	}
	if sysextErr != nil {
		return nil, fmt.Errorf("%w: %w", ErrVerification, sysextErr)
	}
	if keepErr != nil {
		return nil, keepErr
	}
	if hex.EncodeToString(pr2.SignedHash()) != s.SignedHash {
		return nil, fmt.Errorf("%w: the payload changed while it was verified", ErrVerification)
	}
	for _, w := range wants {
		if err := w.compare(rebuilt); err != nil {
			return nil, err
		}
	}
	res.Rebuilt = rebuilt
	return res, nil
}

// wantFile is a file a rebuilt target must equal, hashed in the
// background.
type wantFile struct {
	path, target string
	n            int64
	sum          []byte
	err          error
	done         chan struct{}
}

// hash starts hashing the file and returns w with done to wait on.
func (w wantFile) hash(ctx context.Context) *wantFile {
	w.done = make(chan struct{})
	go func() {
		defer close(w.done)
		f, err := os.Open(w.path)
		if err != nil {
			w.err = err
			return
		}
		defer f.Close()
		h := sha256.New()
		if w.n, w.err = ctxio.Copy(ctx, h, f); w.err == nil {
			w.sum = h.Sum(nil)
		}
	}()
	return &w
}

// compare checks that the rebuilt target equals the file.
func (w *wantFile) compare(rebuilt []apply.Rebuilt) error {
	<-w.done
	if w.err != nil {
		return w.err
	}
	for _, r := range rebuilt {
		if r.Name != w.target {
			continue
		}
		if uint64(w.n) != r.Size || !bytes.Equal(w.sum, r.SHA256[:]) {
			return fmt.Errorf("%w: the payload rebuilds a %s of %d bytes (sha256 %x), but %s is %d bytes (sha256 %x)",
				apply.ErrMismatch, w.target, r.Size, r.SHA256, w.path, w.n, w.sum)
		}
		return nil
	}
	return fmt.Errorf("%w: the payload has no %s to compare with %s", apply.ErrMismatch, w.target, w.path)
}

// secureBoot checks a kernel's Authenticode signature: with certs (or
// require) it must be signed by one of them; without, an unsigned kernel
// (or one that is no PE image) gives nil. A broken signature is an error.
func secureBoot(kernel io.ReaderAt, size int64, certs []*x509.Certificate, require bool) (*bundle.SecureBoot, error) {
	sig, err := authenticode.Check(kernel, size, certs, require)
	switch {
	case errors.Is(err, authenticode.ErrUnsigned) || errors.Is(err, authenticode.ErrNotPE):
		return nil, fmt.Errorf("the kernel is not signed for Secure Boot (%v): it boots nowhere Secure Boot is enforced", err)
	case err != nil || sig == nil:
		return nil, err
	}
	return &bundle.SecureBoot{Subject: sig.Subject, Fingerprint: sig.Fingerprint, TrustedBy: sig.TrustedBy}, nil
}

// isDisk reports whether r starts like a GPT disk image.
func isDisk(r io.ReaderAt) bool {
	head := make([]byte, 1024)
	n, _ := r.ReadAt(head, 0)
	return filekind.Detect(head[:n]) == filekind.DiskImage
}
