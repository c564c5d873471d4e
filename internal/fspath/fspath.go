// Package fspath resolves a path inside a filesystem image the same way
// for every read-only filesystem reader (ext4, btrfs): component by
// component from the root, following symlinks relative to the directory
// that holds them (absolute ones from the image's root), with bounded
// depth and link count so a crafted image cannot loop.
package fspath

import (
	"errors"
	"path"
	"strings"
)

// Limits on what a path may take.
const (
	MaxLinks = 8
	MaxParts = 64
)

// ErrLoop is returned when resolving needs more than MaxLinks symlinks or
// more than MaxParts components.
var ErrLoop = errors.New("too many symlinks or path components")

// FS is what a reader gives the resolver, for its node type N.
type FS[N any] struct {
	Root   func() (N, error)
	Lookup func(dir N, name string) (N, error)
	// Link returns a node's symlink target, or ok false if it is not one.
	Link func(n N) (target string, ok bool, err error)
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
		target, isLink, err := fs.Link(next)
		if err != nil {
			return zero, err
		}
		if isLink {
			if links >= MaxLinks {
				return zero, ErrLoop
			}
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
