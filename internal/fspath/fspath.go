// Package fspath resolves a path inside a filesystem image the same way
// for every read-only filesystem reader (ext4, btrfs): component by
// component from the root, following symlinks relative to the directory
// that holds them (absolute ones from the image's root), with bounded
// depth and link count so a crafted image cannot loop.
package fspath

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Limits on what a path may take.
const (
	MaxLinks    = 8
	MaxParts    = 64
	MaxLinkSize = 4096 // PATH_MAX

	modeTypeMask = 0xF000
	modeRegular  = 0x8000
	modeSymlink  = 0xA000
)

// ErrLoop is returned when resolving needs more than MaxLinks symlinks or
// more than MaxParts components.
var ErrLoop = errors.New("too many symlinks or path components")

// FS is what a reader gives the resolver, for its node type N.
type FS[N any] struct {
	Root   func() (N, error)
	Lookup func(dir N, name string) (N, error)
	// Mode is the node's POSIX mode (the file type in bits 12-15).
	Mode func(N) uint32
	Size func(N) int64
	// Read returns the first n bytes of a regular file, or a symlink's
	// target.
	Read func(node N, n int64) ([]byte, error)
	// NotExist is the reader's error for a path that names no file.
	NotExist error
}

// ReadFile reads the regular file at p, following symlinks; at most limit
// bytes, or an error if the file is larger.
func ReadFile[N any](fs FS[N], p string, limit int64) ([]byte, error) {
	n, err := Resolve(fs, p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if fs.Mode(n)&modeTypeMask != modeRegular {
		return nil, fmt.Errorf("%s: %w: not a regular file", p, fs.NotExist)
	}
	size := fs.Size(n)
	if limit < 0 || size > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d expected", p, size, limit)
	}
	return fs.Read(n, size)
}

// Resolve finds the node at p.
func Resolve[N any](fs FS[N], p string) (N, error) {
	return resolve(fs, p, 0)
}

func resolve[N any](fs FS[N], p string, links int) (N, error) {
	var zero N
	parts := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	if len(parts) > MaxParts {
		return zero, ErrLoop
	}
	cur, err := fs.Root()
	if err != nil {
		return zero, err
	}
	var dirs []string
	for i, name := range parts {
		if name == "" {
			continue
		}
		next, err := fs.Lookup(cur, name)
		if err != nil {
			return zero, err
		}
		if fs.Mode(next)&modeTypeMask == modeSymlink {
			if links >= MaxLinks {
				return zero, ErrLoop
			}
			if size := fs.Size(next); size > MaxLinkSize {
				return zero, fmt.Errorf("a symlink of %d bytes", size)
			}
			t, err := fs.Read(next, fs.Size(next))
			if err != nil {
				return zero, err
			}
			target := string(t)
			if !strings.HasPrefix(target, "/") {
				target = strings.Join(dirs, "/") + "/" + target
			}
			return resolve(fs, target+"/"+strings.Join(parts[i+1:], "/"), links+1)
		}
		dirs = append(dirs, name)
		cur = next
	}
	return cur, nil
}

// ReadDir lists the names in the directory at p, without "." and "..",
// in the order list gives them: list calls fn for each entry of a
// directory node until fn returns false. At most limit names: a crafted
// directory of more is an error, not a long walk.
func ReadDir[N any](fs FS[N], p string, limit int, list func(dir N, fn func(name string) bool) error) ([]string, error) {
	dir, err := Resolve(fs, p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	var names []string
	err = list(dir, func(n string) bool {
		if n != "." && n != ".." {
			names = append(names, n)
		}
		return len(names) <= limit
	})
	if err == nil && len(names) > limit {
		err = fmt.Errorf("%s: more than %d entries", p, limit)
	}
	return names, err
}
