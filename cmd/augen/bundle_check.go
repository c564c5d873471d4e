package main

import (
	"crypto"
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
func checkBeforeSigning(e *env, files []bundle.PayloadFile, payloadKeys []string, version string, board *string) error {
	if len(payloadKeys) == 0 {
		return withHint(usagef("--payload-key is required: the bundle records the keys its payloads are signed by"),
			"give the public key clients trust (update-payload-key.pub.pem)")
	}
	var pubs []crypto.PublicKey
	for _, k := range payloadKeys {
		p, err := publicKeyOf(e, k)
		if err != nil {
			return err
		}
		pubs = append(pubs, p)
	}
	var ran []string
	for _, pf := range files {
		res, err := checkOne(e, pf, pubs)
		if err != nil {
			return fmt.Errorf("%w: %s (as %s): %w", errNotSigned, pf.Path, pf.Name, err)
		}
		if kind := res.Summary.Kind; pf.Kind != bundle.KindExtra && kind != pf.Kind {
			return fmt.Errorf("%w: %s is a %s payload, given as the %s payload", errNotSigned, pf.Path, kind, pf.Kind)
		}
		how := "signature and rules"
		switch {
		case pf.Kind == bundle.KindFull:
			how = "signature, rules, applied, kernel against its /usr"
		case pf.Kind == bundle.KindExtra:
			how = "signature, ue-rs's rules, applied"
		}
		ran = append(ran, pf.Name+" ("+how+")")
		if pf.Kind != bundle.KindFull {
			continue
		}
		if res.OSVersion != "" && res.OSVersion != version {
			return fmt.Errorf("%w: --version %s, but the full payload's /usr says %s", errNotSigned, version, res.OSVersion)
		}
		have := verify.BoardOfArch(res.KernelArch)
		switch {
		case *board == "" && have == "":
			return withHint(usagef("--board is needed: the full payload's kernel is neither an x86 bzImage nor an arm64 Image"), "amd64-usr or arm64-usr")
		case *board == "":
			*board = have
		case have != "" && *board != have:
			return fmt.Errorf("%w: --board %s, but the full payload's kernel is an %s kernel (board %s)", errNotSigned, *board, res.KernelArch, have)
		}
	}
	logTo(e)("input checks: " + strings.Join(ran, "; ") + "; deltas are applied by augen verify --old")
	return nil
}

// checkOne verifies one payload as verify will: a delta (whose old
// release is not at hand) by its rules and signature only.
func checkOne(e *env, pf bundle.PayloadFile, pubs []crypto.PublicKey) (*verify.PayloadResult, error) {
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
	return verify.Payload(e.ctx, f, st.Size(), pubs, verify.PayloadOptions{Sources: apply.Sources{TempDir: os.TempDir()}, Extra: pf.Kind == bundle.KindExtra})
}
