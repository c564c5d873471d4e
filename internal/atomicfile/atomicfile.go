// Package atomicfile writes outputs so that a failed run leaves nothing
// behind: data goes to a temporary file beside the destination, which is
// synced and renamed over it only on Commit.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/augen-project/augen/internal/tempfile"
)

// File is an output being written.
type File struct {
	*os.File
	dest string
	done bool
}

// Create starts writing path. The directory must exist; the temporary file
// lives in it so that the final rename is atomic.
func Create(path string) (*File, error) {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("output directory %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("output directory %s is not a directory", dir)
	}
	f, err := tempfile.Create(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	return &File{File: f, dest: path}, nil
}

// Commit makes the output visible under its name with mode 0644.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("%s: already finished", f.dest)
	}
	f.done = true
	if err := f.Chmod(0o644); err != nil {
		f.cleanup()
		return err
	}
	if err := f.Sync(); err != nil {
		f.cleanup()
		return err
	}
	if err := f.File.Close(); err != nil {
		f.cleanup()
		return err
	}
	if err := os.Rename(f.Name(), f.dest); err != nil {
		os.Remove(f.Name())
		tempfile.Forget(f.Name())
		return err
	}
	tempfile.Forget(f.Name())
	return nil
}

// Abort removes the temporary file. It is safe after Commit (a no-op), so
// `defer f.Abort()` is the usual pattern.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.cleanup()
}

func (f *File) cleanup() { tempfile.Remove(f.File) }
