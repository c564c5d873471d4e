package unpack

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/augen-project/augen/internal/ctxio"
	"github.com/augen-project/augen/internal/filekind"
	"github.com/augen-project/augen/internal/pbzip2"
	"github.com/augen-project/augen/internal/tempfile"
)

// KindError says a file given as a USR partition image is something else.
type KindError struct {
	Path string
	Kind filekind.Kind
	// Inside: the file is bzip2 data holding Kind.
	Inside bool
}

func (e *KindError) Error() string {
	if e.Inside {
		return fmt.Sprintf("%s holds %s, not a USR partition image", e.Path, e.Kind)
	}
	return fmt.Sprintf("%s is %s, not a USR partition image", e.Path, e.Kind)
}

// PlainUSRImage returns a path to the USR partition image at path: path
// itself, or, when it is bzip2 data (CI's flatcar_production_update.bin.bz2),
// a temporary file in dir holding it decompressed, removed by done. The
// decompressed image may be at most max bytes: a small file can claim
// gigabytes of zeros. A file of another kind (a disk image, a payload, a
// bundle, a key…) gives a *KindError. decompressing, if set, is called
// before a file is decompressed.
func PlainUSRImage(ctx context.Context, path, dir string, max int64, decompressing func(path string)) (plain string, done func(), err error) {
	kind, err := filekind.DetectFile(path)
	if err != nil {
		return "", nil, err
	}
	switch kind {
	case filekind.Bzip2:
	case filekind.DiskImage, filekind.Payload, filekind.Tar, filekind.PEM, filekind.JSON:
		return "", nil, &KindError{Path: path, Kind: kind}
	default:
		return path, func() {}, nil
	}
	in, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer in.Close()
	z := pbzip2.NewReader(in, 0)
	defer z.Close()
	// What is inside: a production image is compressed too.
	head := make([]byte, filekind.HeadSize)
	n, err := io.ReadFull(z, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", nil, fmt.Errorf("decompressing %s: %w", path, err)
	}
	if filekind.Detect(head[:n]) == filekind.DiskImage {
		return "", nil, &KindError{Path: path, Kind: filekind.DiskImage, Inside: true}
	}
	tmp, err := tempfile.Create(dir, ".augen-usr-*.bin")
	if err != nil {
		return "", nil, err
	}
	if decompressing != nil {
		decompressing(path)
	}
	_, err = tmp.Write(head[:n])
	if err == nil {
		var w int64
		w, err = ctxio.Copy(ctx, tmp, io.LimitReader(z, max-int64(n)+1))
		if err == nil && int64(n)+w > max {
			err = fmt.Errorf("it decompresses to more than %d bytes, more than any USR image", max)
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		tempfile.Remove(tmp)
		return "", nil, fmt.Errorf("decompressing %s: %w", path, err)
	}
	return tmp.Name(), func() { tempfile.Remove(tmp) }, nil
}
