package fspath

import (
	"errors"
	"testing"
)

// A toy filesystem: nodes are paths; links map a node to its target.
type toy struct {
	dirs  map[string]bool
	files map[string]bool
	links map[string]string
}

func (t toy) fs() FS[string] {
	return FS[string]{
		Root: func() (string, error) { return "", nil },
		Lookup: func(dir, name string) (string, error) {
			p := name
			if dir != "" {
				p = dir + "/" + name
			}
			if !t.dirs[dir] && dir != "" {
				return "", errors.New("not a directory")
			}
			if t.dirs[p] || t.files[p] {
				return p, nil
			}
			if _, ok := t.links[p]; ok {
				return p, nil
			}
			return "", errors.New("no such file")
		},
		Mode: func(n string) uint32 {
			switch {
			case t.files[n]:
				return modeRegular
			case t.dirs[n] || n == "":
				return 0x4000
			}
			return modeSymlink
		},
		Size:     func(n string) int64 { return int64(len(t.links[n])) },
		Read:     func(n string, size int64) ([]byte, error) { return []byte(t.links[n]), nil },
		NotExist: errors.New("no such file"),
	}
}

func TestResolve(t *testing.T) {
	tt := toy{
		dirs:  map[string]bool{"lib": true, "share": true, "share/flatcar": true},
		files: map[string]bool{"lib/os-release": true},
		links: map[string]string{"share/flatcar/rel": "../../lib/os-release", "abs": "/lib", "loop": "loop", "etc": "lib"},
	}
	for p, want := range map[string]string{"lib/os-release": "lib/os-release", "/share/flatcar/rel": "lib/os-release", "abs/os-release": "lib/os-release", "etc/os-release": "lib/os-release", "./lib//os-release": "lib/os-release"} {
		if got, err := Resolve(tt.fs(), p); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", p, got, err, want)
		}
	}
	if _, err := Resolve(tt.fs(), "loop"); !errors.Is(err, ErrLoop) {
		t.Errorf("loop: %v", err)
	}
	if _, err := Resolve(tt.fs(), "lib/missing"); err == nil {
		t.Error("missing file resolved")
	}
}
