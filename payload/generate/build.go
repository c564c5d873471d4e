package generate

import (
	"bytes"
	"context"
	"fmt"

	"io"
	"os"

	"github.com/augen-project/augen/internal/tempfile"
	"github.com/augen-project/augen/payload/apply"

	"github.com/augen-project/augen/payload"
)

// BuildOptions complete FullOptions for writing a finished payload.
type BuildOptions struct {
	FullOptions
	// SignatureSizes reserves room for signatures (one per key, in
	// order). Empty means an unsigned payload.
	SignatureSizes []int
	// Sign signs the payload's digest; nil with SignatureSizes set writes a
	// payload prepared for two-pass signing.
	Sign payload.SignFunc
	// TempDir holds the blob spool ("" means os.TempDir()).
	TempDir string
}

// BuildFull plans a full payload and writes it to w. Blobs are spooled to a
// temporary file, since the manifest that precedes them can only be written
// once every blob's size and hash is known; memory stays bounded whatever
// the image size.
func BuildFull(ctx context.Context, w io.Writer, opts BuildOptions) (*payload.Result, error) {
	spool, err := tempfile.Create(opts.TempDir, "augen-blobs-*")
	if err != nil {
		return nil, err
	}
	defer tempfile.Remove(spool)
	fo := opts.FullOptions
	fo.Blobs = spool
	m, err := Full(ctx, fo)
	if err != nil {
		return nil, err
	}
	if len(opts.SignatureSizes) > 0 {
		if err := payload.Prepare(m, opts.SignatureSizes); err != nil {
			return nil, err
		}
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if !opts.Extra {
		return payload.Assemble(w, m, spool, opts.Sign)
	}
	return assembleChecked(ctx, w, m, spool, opts)
}

// assembleChecked writes an extra payload while installing it as ue-rs
// would (apply.SimulateExtra) from the same bytes: a payload ue-rs would
// install wrongly is never finished.
func assembleChecked(ctx context.Context, w io.Writer, m *payload.Manifest, blobs io.Reader, opts BuildOptions) (*payload.Result, error) {
	pr, pw := io.Pipe()
	checked := make(chan error, 1)
	go func() {
		r, err := payload.NewReader(pr, &payload.ReaderOptions{Prepared: opts.Sign == nil && len(opts.SignatureSizes) > 0})
		if err == nil {
			_, err = apply.SimulateExtra(ctx, r, apply.ExtraOptions{TempDir: opts.TempDir, Unsigned: len(opts.SignatureSizes) == 0})
		}
		if err != nil {
			err = fmt.Errorf("generate: the extra payload as ue-rs would install it: %w", err)
		}
		pr.CloseWithError(err)
		checked <- err
	}()
	res, err := payload.Assemble(io.MultiWriter(w, pw), m, blobs, opts.Sign)
	pw.CloseWithError(err)
	if cerr := <-checked; cerr != nil {
		return nil, cerr
	}
	return res, err
}

// DeltaBuildOptions complete DeltaOptions for writing a finished payload.
type DeltaBuildOptions struct {
	DeltaOptions
	SignatureSizes []int
	Sign           payload.SignFunc
}

// BuildDelta plans a delta payload and writes it to w. The delta's data
// is held in memory (it is a fraction of the image).
func BuildDelta(ctx context.Context, w io.Writer, opts DeltaBuildOptions) (*payload.Result, error) {
	m, blobs, err := Delta(ctx, opts.DeltaOptions)
	if err != nil {
		return nil, err
	}
	if len(opts.SignatureSizes) > 0 {
		if err := payload.Prepare(m, opts.SignatureSizes); err != nil {
			return nil, err
		}
	}
	return payload.Assemble(w, m, bytes.NewReader(blobs), opts.Sign)
}

// Opened is a file opened as a build input: Input for a full payload,
// Delta for a delta. Close it when done.
type Opened struct {
	*os.File
	Input Input
	Delta File
}

// OpenInput opens the file at path as a build input.
func OpenInput(path string) (*Opened, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Opened{File: f, Input: Input{R: f, Size: st.Size()}, Delta: File{R: f, Size: st.Size()}}, nil
}

// OpenInputs opens each path with OpenInput (nil for ""); closeAll closes
// them all. On error nothing stays open.
func OpenInputs(paths ...string) (files []*Opened, closeAll func(), err error) {
	closeAll = func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}
	for _, p := range paths {
		var f *Opened
		if p != "" {
			if f, err = OpenInput(p); err != nil {
				closeAll()
				return nil, func() {}, err
			}
		}
		files = append(files, f)
	}
	return files, closeAll, nil
}
