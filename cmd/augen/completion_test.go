package main

import (
	"fmt"
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
				// What bash offers: commands, a group's subcommands, a
				// command's flags, and completion's own argument.
				for line, want := range map[string]string{
					"augen pay":           "payload",
					"augen payload ver":   "verify",
					"augen release --del": "--delta-from",
					"augen completion ":   "bash fish zsh",
				} {
					words := strings.Fields(line)
					if strings.HasSuffix(line, " ") {
						words = append(words, "")
					}
					script := fmt.Sprintf(". %s; COMP_WORDS=(%s); COMP_CWORD=%d; _augen; printf '%%s\n' \"${COMPREPLY[@]}\" | sort | tr '\\n' ' '",
						f, quoteWords(words), len(words)-1)
					b, err := exec.Command("bash", "-c", script).CombinedOutput()
					if err != nil || strings.TrimSpace(string(b)) != want {
						t.Errorf("bash completion of %q: %q (%v), want %q", line, b, err, want)
					}
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

// quoteWords writes words as a bash array's elements.
func quoteWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + w + "'"
	}
	return strings.Join(q, " ")
}
