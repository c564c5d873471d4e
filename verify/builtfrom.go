package verify

import (
	"context"
	"fmt"
	"io"

	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/tempfile"
	"github.com/augen-project/augen/payload/generate"
	"github.com/augen-project/augen/unpack"
)

// BuiltFrom checks that the full payload of a verified report was built
// from the CI image at path: it unpacks the image (with checks), rebuilds
// the payload unsigned with the same signature sizes, and compares the
// signed-region hash, which covers every byte but the signatures. A
// mismatch is recorded in rep (check "built from") and wraps
// ErrVerification.
func BuiltFrom(ctx context.Context, rep *Report, path string, opts unpack.Options, checks unpack.Checks) (err error) {
	rep.BuiltFrom = &BuiltFromReport{Image: path}
	defer func() {
		if err != nil {
			rep.BuiltFrom.Error = err.Error()
		}
	}()
	var full *PayloadReport
	for i := range rep.Payloads {
		if rep.Payloads[i].Kind == bundle.KindFull {
			full = &rep.Payloads[i]
		}
	}
	if full == nil {
		rep.fail("bundle", "built from", "no full payload to compare with %s", path)
		rep.Valid = false
		return fmt.Errorf("%w: no full payload to compare with %s", ErrVerification, path)
	}
	tmp, err := tempfile.MkdirTemp(opts.TempDir, "augen-verify-image-")
	if err != nil {
		return err
	}
	defer tempfile.RemoveAll(tmp)
	opts.TempDir = tmp
	usr, kernel, _, err := unpack.ToDir(ctx, path, tmp, "image", opts, checks)
	if err != nil {
		return err
	}
	bo := generate.BuildOptions{SignatureSizes: full.SignatureSizes, TempDir: tmp}
	in, closeAll, err := generate.OpenInputs(usr, kernel)
	if err != nil {
		return err
	}
	defer closeAll()
	img, k := in[0], in[1]
	bo.Image, bo.Kernel = img.Input, k.Input
	res, err := generate.BuildFull(ctx, io.Discard, bo)
	if err != nil {
		return err
	}
	got := fmt.Sprintf("%x", res.Digest)
	rep.BuiltFrom.SignedHash = got
	if got != full.SignedHash {
		rep.fail(full.Name, "built from", "%s: the rebuilt payload's signed hash is %s, the bundle's %s", path, got, full.SignedHash)
		rep.Valid = false
		return fmt.Errorf("%w: %s was not built from %s", ErrVerification, full.Name, path)
	}
	rep.BuiltFrom.Match = true
	return nil
}
