// Package tempfile creates the temporary files and directories augen works
// in and remembers them until they are removed, so that an interrupted
// command (Ctrl-C, SIGTERM, SIGHUP, a broken pipe) can remove every one of
// them before it exits, even while the code that made them is still busy.
package tempfile

import (
	"os"
	"sync"
)

var (
	mu   sync.Mutex
	live = map[string]bool{} // path -> is a directory
)

func remember(path string, dir bool) {
	mu.Lock()
	live[path] = dir
	mu.Unlock()
}

// Forget stops tracking path: it was removed, or renamed into place.
func Forget(path string) {
	mu.Lock()
	delete(live, path)
	mu.Unlock()
}

// Create is os.CreateTemp with the file remembered until Remove or Forget.
func Create(dir, pattern string) (*os.File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	remember(f.Name(), false)
	return f, nil
}

// MkdirTemp is os.MkdirTemp with the directory remembered until RemoveAll.
func MkdirTemp(dir, pattern string) (string, error) {
	d, err := os.MkdirTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	remember(d, true)
	return d, nil
}

// Remove closes and removes a file made by Create.
func Remove(f *os.File) {
	f.Close()
	os.Remove(f.Name())
	Forget(f.Name())
}

// RemoveAll removes a directory made by MkdirTemp and everything in it.
func RemoveAll(dir string) {
	os.RemoveAll(dir)
	Forget(dir)
}

// Live returns the paths still remembered (for tests).
func Live() []string {
	mu.Lock()
	defer mu.Unlock()
	out := make([]string, 0, len(live))
	for p := range live {
		out = append(out, p)
	}
	return out
}

// Cleanup removes every remembered file and directory. It is what an
// interrupted command calls just before it exits.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	for p, dir := range live {
		if dir {
			os.RemoveAll(p)
		} else {
			os.Remove(p)
		}
		delete(live, p)
	}
}
