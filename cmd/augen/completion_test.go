package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The completion scripts name every command and each command's flags, and
// the bash one parses.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, out, errOut := runCapture("completion", shell)
		if code != exitOK {
			t.Fatalf("completion %s: exit %d: %s", shell, code, errOut)
		}
		for _, want := range []string{"payload", "build", "verify", "image", "delta-from", "allow-unapplied-deltas"} {
			if !strings.Contains(out, want) {
				t.Errorf("completion %s: no %q", shell, want)
			}
		}
		if shell == "bash" {
			if _, err := exec.LookPath("bash"); err == nil {
				f := filepath.Join(t.TempDir(), "augen.bash")
				os.WriteFile(f, []byte(out), 0o644)
				if b, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
					t.Errorf("bash -n: %v\n%s", err, b)
				}
			}
		}
	}
	if code, _, _ := runCapture("completion", "tcsh"); code != exitUsage {
		t.Errorf("unknown shell: exit %d", code)
	}
}

// One man page per command, from its help, plus augen(1).
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCapture("man", dir); code != exitOK {
		t.Fatalf("man: exit %d: %s", code, errOut)
	}
	for _, c := range append(commands(), command{name: ""}) {
		name := "augen.1"
		if c.name != "" {
			name = manName(c.name) + ".1"
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), ".TH ") || (c.name != "" && !strings.Contains(string(b), "Usage: augen "+c.name)) {
			t.Errorf("%s: %.80q", name, b)
		}
	}
}
