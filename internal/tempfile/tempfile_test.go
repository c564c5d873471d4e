package tempfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCleanupRemovesWhatIsLive(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(dir, "a-*")
	if err != nil {
		t.Fatal(err)
	}
	d, err := MkdirTemp(dir, "d-*")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "x"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	kept, err := Create(dir, "kept-*")
	if err != nil {
		t.Fatal(err)
	}
	Forget(kept.Name())
	kept.Close()
	Cleanup()
	f.Close()
	for _, p := range []string{f.Name(), d} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still exists after Cleanup", p)
		}
	}
	if _, err := os.Stat(kept.Name()); err != nil {
		t.Errorf("a forgotten file was removed: %v", err)
	}
	if n := len(Live()); n != 0 {
		t.Errorf("%d paths still live", n)
	}
}

func TestRemoveForgets(t *testing.T) {
	f, err := Create(t.TempDir(), "a-*")
	if err != nil {
		t.Fatal(err)
	}
	Remove(f)
	if _, err := os.Stat(f.Name()); !os.IsNotExist(err) {
		t.Errorf("Remove left %s", f.Name())
	}
	for _, p := range Live() {
		if p == f.Name() {
			t.Errorf("Remove did not forget %s", p)
		}
	}
}
