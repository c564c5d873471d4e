package bundle

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/augen-project/augen"
)

// EnvelopeName is the bundle member holding the DSSE envelope (and in it
// the release statement). Upper case sorts it before every payload file,
// so a reader checks signatures before it reads any payload.
const EnvelopeName = "RELEASE.dsse.json"

// Limits checked before anything is read.
const (
	MaxEnvelopeSize = 2 << 20
	MaxPayloadSize  = 4 << 30
	MaxMembers      = 64
)

// ErrFormat wraps every reason a bundle's container is refused.
var ErrFormat = augen.Rejection("bundle: malformed bundle")

func badFormat(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// Member is one file to put in a bundle.
type Member struct {
	Name string
	Size int64
	Open func() (io.ReadCloser, error)

	cleanup func()
}

// WriteTar writes members as a deterministic tar: sorted by name, USTAR
// headers with mode 0644, owner 0:0, no user or group names and mtime, so
// the same members always give the same bytes.
func WriteTar(w io.Writer, members []Member, mtime time.Time) error {
	sorted := append([]Member(nil), members...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	tw := tar.NewWriter(w)
	for i, m := range sorted {
		if i > 0 && sorted[i-1].Name == m.Name {
			return fmt.Errorf("bundle: %s twice", m.Name)
		}
		if !memberName(m.Name) {
			return fmt.Errorf("bundle: %q cannot be a bundle member", m.Name)
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: m.Name, Mode: 0o644, Size: m.Size, ModTime: mtime.UTC().Truncate(time.Second), Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		rc, err := m.Open()
		if err != nil {
			return err
		}
		n, err := io.Copy(tw, rc)
		rc.Close()
		if err != nil {
			return err
		}
		if n != m.Size {
			return fmt.Errorf("bundle: %s changed size while it was written (%d, then %d bytes)", m.Name, m.Size, n)
		}
	}
	return tw.Close()
}

func memberName(name string) bool { return name == EnvelopeName || fileName.MatchString(name) }

// ReadTar reads a bundle strictly, calling fn for each member in order
// with its content (which fn must read to its end or leave; what it leaves
// is skipped). It refuses, before fn sees it: anything but regular files,
// unknown or misplaced names (path traversal included), duplicates, members
// out of order, oversize members, and non-zero data after the archive.
func ReadTar(r io.Reader, fn func(name string, size int64, body io.Reader) error) error {
	return readTar(r, func(hdr *tar.Header, _ int64, body io.Reader) error { return fn(hdr.Name, hdr.Size, body) })
}

// ReadTarAt is ReadTar that also tells fn where each member's data starts
// in the bundle (r must start at the bundle's first byte).
func ReadTarAt(r io.Reader, fn func(name string, offset, size int64, body io.Reader) error) error {
	return readTar(r, func(hdr *tar.Header, off int64, body io.Reader) error { return fn(hdr.Name, off, hdr.Size, body) })
}

func readTar(r io.Reader, fn func(hdr *tar.Header, offset int64, body io.Reader) error) error {
	cr := &countingReader{r: r}
	tr := tar.NewReader(cr)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return headerErr(err, cr.n, names)
		}
		switch {
		case hdr.Format != tar.FormatUSTAR || len(hdr.PAXRecords) > 0:
			// PAX and GNU headers can make a member sparse (GNU.sparse.*
			// records, type 'S'): archive/tar then expands holes, so the
			// bytes verified would not be the bytes at the member's
			// offset. augen writes plain USTAR and reads nothing else.
			return badFormat("member %q has a %v header; bundles use plain USTAR headers only", hdr.Name, hdr.Format)
		case hdr.Typeflag != tar.TypeReg:
			return badFormat("member %q is not a regular file (type %q)", hdr.Name, hdr.Typeflag)
		case !memberName(hdr.Name):
			return badFormat("unexpected member %q", hdr.Name)
		case len(names) > 0 && hdr.Name <= names[len(names)-1]:
			return badFormat("member %q is duplicated or out of order", hdr.Name)
		case len(names) == 0 && hdr.Name != EnvelopeName:
			return badFormat("the first member is %q, not %s", hdr.Name, EnvelopeName)
		case len(names) >= MaxMembers:
			return badFormat("more than %d members", MaxMembers)
		case hdr.Name == EnvelopeName && hdr.Size > MaxEnvelopeSize, hdr.Size > MaxPayloadSize, hdr.Size < 0:
			return badFormat("member %s is %d bytes, over its limit", hdr.Name, hdr.Size)
		}
		names = append(names, hdr.Name)
		// archive/tar reads headers exactly, so the count is where the
		// member's data starts.
		start := cr.n
		if err := fn(hdr, start, tr); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return badFormat("the file ends at byte %d, inside member %s (bytes %d..%d): the bundle is truncated (an interrupted download or copy?)", cr.n, hdr.Name, start, start+hdr.Size)
			}
			return err
		}
	}
	if len(names) == 0 {
		return badFormat("empty bundle")
	}
	// After the end-of-archive marker only zero padding may follow.
	var buf [4096]byte
	for {
		n, err := cr.Read(buf[:])
		for _, b := range buf[:n] {
			if b != 0 {
				return badFormat("data after the end of the archive (byte %d)", cr.n)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// headerErr explains a tar header archive/tar refused: where the header
// starts (archive/tar has read the whole 512-byte block by then), and
// whether the file is no bundle at all or a truncated one.
func headerErr(err error, n int64, names []string) error {
	start := max(n-512, 0)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badFormat("the file ends at byte %d, inside the tar header at byte %d: the bundle is truncated (an interrupted download or copy?)", n, start)
	case len(names) == 0 && start == 0:
		return badFormat("not a release bundle: its first 512 bytes are no tar header (%v)", err)
	}
	return badFormat("the tar header at bytes %d..%d is damaged (%v)", start, start+512, err)
}
