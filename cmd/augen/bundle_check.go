package main

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"

	toolkit "github.com/augen-project/augen"
	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/apply"
	"github.com/augen-project/augen/verify"
)

// errNotSigned is a bundle create refusal: the payloads given cannot make
// a bundle that verifies.
var errNotSigned = toolkit.Rejection("bundle create: refused before signing")

// checkBeforeSigning makes sure the bundle about to be signed can verify:
// every payload's version-2 signature (the one clients check) is by one
// of the --payload-key keys, each is of its kind (the full payload is no
// delta, a delta no full payload), and the full payload, applied, rebuilds
// a /usr that declares the release's version (when it declares one) and a
// kernel that matches it, of the board's architecture. An empty board is
// set to the kernel's.
//
// The full payload's kernel must be signed for Secure Boot by one of
// sb.certs (when given, or sb.require); its signer goes into the
// statement. Each extra that is a disk image is checked as a sysext
// against the full payload's /usr, and what was checked recorded
// (files[i].Sysext).
func checkBeforeSigning(e *env, files []bundle.PayloadFile, payloadKeys []string, version string, board *string, sb secureBootCheck) (*bundle.SecureBoot, error) {
	if len(payloadKeys) == 0 {
		return nil, withHint(usagef("--payload-key is required: the bundle records the keys its payloads are signed by"),
			"give the public key clients trust (update-payload-key.pub.pem)")
	}
	var pubs []crypto.PublicKey
	for _, k := range payloadKeys {
		p, err := publicKeyOf(e, k)
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, p)
	}
	var ran []string
	var host *verify.Host
	var signed *bundle.SecureBoot
	for i, pf := range files {
		res, err := checkOne(e, pf, pubs, sb, host)
		if err != nil {
			return nil, fmt.Errorf("%w: %s (as %s): %w", errNotSigned, pf.Path, pf.Name, err)
		}
		if kind := res.Summary.Kind; pf.Kind != bundle.KindExtra && kind != pf.Kind {
			return nil, fmt.Errorf("%w: %s is a %s payload, given as the %s payload", errNotSigned, pf.Path, kind, pf.Kind)
		}
		how := "signature and rules"
		switch {
		case pf.Kind == bundle.KindFull:
			how = "signature, rules, applied, kernel against its /usr"
			host, signed = res.Host, res.SecureBoot
			if signed != nil {
				how += ", Secure Boot signature by " + signed.Subject
			}
		case pf.Kind == bundle.KindExtra && res.Sysext != nil:
			how = "signature, ue-rs's rules, applied, sysext against the /usr"
			files[i].Sysext = res.Sysext
		case pf.Kind == bundle.KindExtra:
			how = "signature, ue-rs's rules, applied"
		}
		ran = append(ran, pf.Name+" ("+how+")")
		if pf.Kind != bundle.KindFull {
			continue
		}
		if res.OSVersion != "" && res.OSVersion != version {
			return nil, fmt.Errorf("%w: --version %s, but the full payload's /usr says %s", errNotSigned, version, res.OSVersion)
		}
		have := verify.BoardOfArch(res.KernelArch)
		switch {
		case *board == "" && have == "":
			return nil, withHint(usagef("--board is needed: the full payload's kernel is neither an x86 bzImage nor an arm64 Image"), "amd64-usr or arm64-usr")
		case *board == "":
			*board = have
		case have != "" && *board != have:
			return nil, fmt.Errorf("%w: --board %s, but the full payload's kernel is an %s kernel (board %s)", errNotSigned, *board, res.KernelArch, have)
		}
	}
	logTo(e)("input checks: " + strings.Join(ran, "; ") + "; deltas are applied by augen verify --old")
	return signed, nil
}

// secureBootCheck is what the kernel's Secure Boot signature is checked
// against: --secure-boot-cert, and whether one is required (--official).
type secureBootCheck struct {
	certs   []*x509.Certificate
	require bool
}

// checkOne verifies one payload as verify will: a delta (whose old
// release is not at hand) by its rules and signature only.
func checkOne(e *env, pf bundle.PayloadFile, pubs []crypto.PublicKey, sb secureBootCheck, host *verify.Host) (*verify.PayloadResult, error) {
	f, err := os.Open(pf.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	s, err := payload.Check(io.NewSectionReader(f, 0, st.Size()), pubs)
	if err == nil {
		err = s.CheckClientSignature()
	}
	if err != nil || pf.Kind == bundle.KindDelta || (pf.Kind == bundle.KindFull && s.Kind != bundle.KindFull) {
		// A delta (whose old release is not at hand) is checked by its
		// rules and signature only; one of the wrong kind goes no further.
		return &verify.PayloadResult{Summary: s}, err
	}
	opts := verify.PayloadOptions{Sources: apply.Sources{TempDir: os.TempDir()}, Extra: pf.Kind == bundle.KindExtra,
		SecureBootCerts: sb.certs, RequireSecureBoot: sb.require}
	if opts.Extra {
		opts.Host, opts.ExtraName = host, strings.TrimSuffix(pf.Name, ".gz")
	}
	return verify.Payload(e.ctx, f, st.Size(), pubs, opts)
}
