// Package osrelease reads the release version a /usr partition image
// declares, from /usr/lib/os-release (VERSION=) or, failing that,
// /usr/share/flatcar/release (FLATCAR_RELEASE_VERSION=), in an ext2/3/4 or
// btrfs filesystem. It lets verification tie a release statement's
// version to what the payload actually installs.
package osrelease

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/augen-project/augen/internal/btrfs"
	"github.com/augen-project/augen/internal/budget"
	"github.com/augen-project/augen/internal/ext4"
)

// ErrNoFilesystem means the image holds no filesystem this package reads.
var ErrNoFilesystem = errors.New("osrelease: no ext2/3/4 or btrfs filesystem")

// ErrNoVersion means the filesystem declares no version.
var ErrNoVersion = errors.New("osrelease: no release version in /usr/lib/os-release or /usr/share/flatcar/release")

const maxFile = 64 << 10

// MaxRead bounds what reading the version may read from the image in
// all: a few small files and the directories above them take well under
// 1 MiB in a real /usr, while a crafted tree whose pointers loop or fan
// out to one node is stopped after a fraction of a second.
const MaxRead = 64 << 20

// Paths are relative to the partition's root, which is mounted at /usr.
var sources = []struct{ path, key string }{
	{"lib/os-release", "VERSION"},
	{"share/flatcar/release", "FLATCAR_RELEASE_VERSION"},
	{"share/coreos/release", "COREOS_RELEASE_VERSION"},
}

type fileReader interface {
	ReadFile(p string, limit int64) ([]byte, error)
}

// Version returns the version the partition image declares and the file
// it came from (e.g. "/usr/lib/os-release"). Every read is charged
// against MaxRead and checks ctx.
func Version(ctx context.Context, r io.ReaderAt, size int64) (version, from string, err error) {
	return find(ctx, r, size, sources)
}

// boardSources are where a Flatcar /usr names its board.
var boardSources = []struct{ path, key string }{
	{"share/flatcar/release", "FLATCAR_RELEASE_BOARD"},
	{"share/coreos/release", "COREOS_RELEASE_BOARD"},
}

// Board returns the board the partition image declares
// (FLATCAR_RELEASE_BOARD= in /usr/share/flatcar/release, e.g.
// "amd64-usr") and the file it came from; ErrNoVersion when it declares
// none. Reads are bounded as Version's.
func Board(ctx context.Context, r io.ReaderAt, size int64) (board, from string, err error) {
	return find(ctx, r, size, boardSources)
}

// find returns the first of the keys the files declare.
func find(ctx context.Context, r io.ReaderAt, size int64, sources []struct{ path, key string }) (value, from string, err error) {
	r = budget.NewReaderAt(ctx, r, MaxRead)
	var fs fileReader
	var notExist error
	switch {
	case ext4.Probe(r):
		fs, err = ext4.Open(r, size)
		notExist = ext4.ErrNotExist
	case btrfs.Probe(r):
		fs, err = btrfs.Open(r, size)
		notExist = btrfs.ErrNotExist
	default:
		return "", "", ErrNoFilesystem
	}
	if err != nil {
		return "", "", err
	}
	for _, s := range sources {
		b, err := fs.ReadFile(s.path, maxFile)
		if errors.Is(err, notExist) {
			continue
		}
		if err != nil {
			return "", "", err
		}
		if v := Field(b, s.key); v != "" {
			return v, "/usr/" + s.path, nil
		}
	}
	return "", "", ErrNoVersion
}

// Field returns KEY's value from an os-release style file (KEY=value,
// optionally quoted), "" if absent.
func Field(b []byte, key string) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || k != key {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			if u, err := strconv.Unquote(`"` + v[1:len(v)-1] + `"`); err == nil {
				return u
			}
			return v[1 : len(v)-1]
		}
		return v
	}
	return ""
}

// Check compares the version the image declares with want. An image
// without a readable filesystem or version is reported as such (callers
// decide whether that is fatal).
func Check(ctx context.Context, r io.ReaderAt, size int64, want string) error {
	got, from, err := Version(ctx, r, size)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%w: %s says VERSION %s, not %s", ErrMismatch, from, got, want)
	}
	return nil
}

// ErrMismatch is wrapped when the declared version differs.
var ErrMismatch = errors.New("release version mismatch")
