package verify

import (
	"context"
	"crypto"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/augen-project/augen/internal/ctxio"
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
}

// PayloadResult is what Payload found.
type PayloadResult struct {
	Summary *payload.Summary
	Rebuilt []apply.Rebuilt
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
	pr2, err := payload.NewReader(ctxio.Reader(ctx, io.NewSectionReader(src, 0, size)), nil)
	if err != nil {
		return nil, err
	}
	rebuilt, err := apply.Simulate(ctx, pr2, opts.Sources)
	if err != nil {
		return nil, err
	}
	if hex.EncodeToString(pr2.SignedHash()) != s.SignedHash {
		return nil, fmt.Errorf("%w: the payload changed while it was verified", ErrVerification)
	}
	return &PayloadResult{Summary: s, Rebuilt: rebuilt}, nil
}
