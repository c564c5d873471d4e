package main

import (
	"bytes"
	"compress/bzip2"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts in testdata/cli")

const root = "../../testdata/"

// fixtures lays out what the transcripts refer to in a fresh directory:
// $VEC is testdata/vectors, $TMP holds inputs made for the test.
func fixtures(t *testing.T) (tmp, vec string) {
	t.Helper()
	tmp = t.TempDir()
	vec, _ = filepath.Abs(root + "vectors")
	write := func(name string, b []byte, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(tmp, name), b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(tmp, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	usr, err := os.ReadFile(root + "vectors/usr-new.bin.bz2")
	if err != nil {
		t.Fatal(err)
	}
	img, err := io.ReadAll(bzip2.NewReader(bytes.NewReader(usr)))
	if err != nil {
		t.Fatal(err)
	}
	write("usr-new.bin", img, 0o644)
	old, _ := os.ReadFile(root + "vectors/usr-old.bin.bz2")
	oldImg, _ := io.ReadAll(bzip2.NewReader(bytes.NewReader(old)))
	write("usr-old.bin", oldImg, 0o644)
	write("short.bin", make([]byte, 100), 0o644)
	write("unaligned.bin", make([]byte, 3*4096+1), 0o644)
	write("empty", nil, 0o644)
	keyA, _ := os.ReadFile(root + "vectors/TEST-ONLY-key-a.pem")
	keyB, _ := os.ReadFile(root + "vectors/TEST-ONLY-key-b.pem")
	write("key-a.pem", keyA, 0o600)
	write("key-b.pem", keyB, 0o600)
	write("key-a-open.pem", keyA, 0o644)
	enc, _ := os.ReadFile(root + "keys/TEST-ONLY-key-a.encrypted.pem")
	write("key-encrypted.pem", enc, 0o600)
	write("not-a-key.pem", []byte("hello\n"), 0o600)
	pubA, _ := os.ReadFile(root + "vectors/TEST-ONLY-key-a.pub.pem")
	write("pub-as-key.pem", pubA, 0o600)
	return tmp, vec
}

// transcript is one testdata/cli/*.txt file:
//
//	# comments
//	augen ARGS...        (words split on spaces; $TMP and $VEC expanded)
//	exit N
//	absent PATH          (optional: a file the command must not leave)
//	-- stdout --
//	…
//	-- stderr --
//	…
type transcript struct {
	comments []string
	args     string
	exit     int
	absent   []string
	stdout   string
	stderr   string
}

func parseTranscript(t *testing.T, b string) transcript {
	var tr transcript
	head, rest, ok := strings.Cut(b, "-- stdout --\n")
	if !ok {
		t.Fatal("no -- stdout -- section")
	}
	tr.stdout, tr.stderr, ok = strings.Cut(rest, "-- stderr --\n")
	if !ok {
		t.Fatal("no -- stderr -- section")
	}
	for _, line := range strings.Split(strings.TrimSpace(head), "\n") {
		switch {
		case strings.HasPrefix(line, "#"):
			tr.comments = append(tr.comments, line)
		case strings.HasPrefix(line, "augen "):
			tr.args = strings.TrimPrefix(line, "augen ")
		case strings.HasPrefix(line, "exit "):
			tr.exit, _ = strconv.Atoi(strings.TrimPrefix(line, "exit "))
		case strings.HasPrefix(line, "absent "):
			tr.absent = append(tr.absent, strings.TrimPrefix(line, "absent "))
		default:
			t.Fatalf("unknown line %q", line)
		}
	}
	return tr
}

func (tr transcript) String() string {
	var b strings.Builder
	for _, c := range tr.comments {
		b.WriteString(c + "\n")
	}
	b.WriteString("augen " + tr.args + "\n")
	b.WriteString("exit " + strconv.Itoa(tr.exit) + "\n")
	for _, a := range tr.absent {
		b.WriteString("absent " + a + "\n")
	}
	b.WriteString("-- stdout --\n" + tr.stdout + "-- stderr --\n" + tr.stderr)
	return b.String()
}

func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob(root + "cli/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			tr := parseTranscript(t, string(b))
			tmp, vec := fixtures(t)
			expand := strings.NewReplacer("$TMP", tmp, "$VEC", vec)
			unexpand := strings.NewReplacer(tmp, "$TMP", vec, "$VEC")
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), strings.Fields(expand.Replace(tr.args)), strings.NewReader(""), &stdout, &stderr)
			got := tr
			got.exit = code
			got.stdout = unexpand.Replace(stdout.String())
			got.stderr = unexpand.Replace(stderr.String())
			for _, a := range tr.absent {
				p := expand.Replace(a)
				if _, err := os.Stat(p); err == nil {
					t.Errorf("%s exists after the command", a)
				}
				// Nor any temporary file beside it.
				left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*"))
				if len(left) > 0 {
					t.Errorf("temporary files left: %v", left)
				}
			}
			if *update {
				if err := os.WriteFile(file, []byte(got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got.String() != tr.String() {
				t.Errorf("transcript differs:\n--- want\n%s\n--- got\n%s", tr, got)
			}
			if code != exitOK && strings.Count(got.stderr, "augen: error: ") != 1 {
				t.Errorf("a failure must print exactly one error line, got:\n%s", got.stderr)
			}
		})
	}
}
