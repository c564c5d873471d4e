package main

import (
	"bytes"
	"compress/bzip2"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts in testdata/cli")

const root = "../../testdata/"

// fixtures lays out what the transcripts refer to in a fresh directory:
// $VEC is testdata/vectors, $TMP holds inputs made for the test. The inputs
// are made once per test binary and hard-linked into each test's directory.
func fixtures(t *testing.T) (tmp, vec string) {
	t.Helper()
	fixtureOnce.Do(func() { fixtureDir, fixtureErr = makeFixtures() })
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	tmp = t.TempDir()
	ents, err := os.ReadDir(fixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.Link(filepath.Join(fixtureDir, e.Name()), filepath.Join(tmp, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	vec, _ = filepath.Abs(root + "vectors")
	return tmp, vec
}

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureErr  error
)

// softhsmDir is this test process's private SoftHSM2 token directory.
var softhsmDir string

func TestMain(m *testing.M) {
	dir, cleanup, err := testutil.SetupSoftHSM()
	if err != nil {
		panic(err)
	}
	softhsmDir = dir
	code := m.Run()
	// Not deferred: os.Exit skips deferred calls.
	cleanup()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	if madeDir != "" {
		os.RemoveAll(madeDir)
	}
	if foldersDir != "" {
		os.RemoveAll(foldersDir)
	}
	os.Exit(code)
}

func makeFixtures() (string, error) {
	dir, err := os.MkdirTemp("", "augen-cli-fixtures-")
	if err != nil {
		return "", err
	}
	write := func(name string, b []byte, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err == nil {
			err = os.WriteFile(p, b, mode)
		}
		if err == nil {
			err = os.Chmod(p, mode)
		}
	}
	read := func(name string) []byte {
		b, rerr := os.ReadFile(root + name)
		if err == nil {
			err = rerr
		}
		return b
	}
	unbz := func(name string) []byte {
		b, rerr := io.ReadAll(bzip2.NewReader(bytes.NewReader(read(name))))
		if err == nil {
			err = rerr
		}
		return b
	}
	write("usr-new.bin", unbz("vectors/usr-new.bin.bz2"), 0o644)
	write("usr-old.bin", unbz("vectors/usr-old.bin.bz2"), 0o644)
	write("short.bin", make([]byte, 100), 0o644)
	write("unaligned.bin", make([]byte, 3*4096+1), 0o644)
	write("empty", nil, 0o644)
	write("key-a.pem", read("vectors/TEST-ONLY-key-a.pem"), 0o600)
	write("key-b.pem", read("vectors/TEST-ONLY-key-b.pem"), 0o600)
	write("key-a-open.pem", read("vectors/TEST-ONLY-key-a.pem"), 0o644)
	write("key-encrypted.pem", read("keys/TEST-ONLY-key-a.encrypted.pem"), 0o600)
	write("not-a-key.pem", []byte("hello\n"), 0o600)
	write("pub-as-key.pem", read("vectors/TEST-ONLY-key-a.pub.pem"), 0o600)
	if err != nil {
		return dir, err
	}
	// A release of the test image with a delta from 4459.1.0 (payloads
	// signed by key a, the bundle by key b), its policies and damaged
	// copies, for the transcripts about bundles (fx-*: no test writes
	// these names, which are hard links shared by every test).
	augen := func(args ...string) {
		var out bytes.Buffer
		if err == nil && run(context.Background(), args, strings.NewReader(""), &out, &out) != 0 {
			err = fmt.Errorf("fixture: augen %s: %s", strings.Join(args, " "), out.String())
		}
	}
	old, had := os.LookupEnv("SOURCE_DATE_EPOCH")
	os.Setenv("SOURCE_DATE_EPOCH", "1258628400")
	augen("release", root+"image/flatcar_test_image.bin.bz2", "--usr-size", "4MiB", "--version", "4459.2.1",
		"--key", "file:"+dir+"/key-a.pem", "--bundle-key", "file:"+dir+"/key-b.pem",
		"--delta-from", "4459.1.0="+root+"image/flatcar_test_image-4459.1.0.bin.bz2", "-o", dir+"/fx-release.tar")
	if had {
		os.Setenv("SOURCE_DATE_EPOCH", old)
	} else {
		os.Unsetenv("SOURCE_DATE_EPOCH")
	}
	pubA, pubB := root+"vectors/TEST-ONLY-key-a.pub.pem", root+"vectors/TEST-ONLY-key-b.pub.pem"
	augen("policy", "init", "--bundle-key", "alice="+pubB, "--payload-key", pubA, "-o", dir+"/fx-policy.json")
	augen("policy", "init", "--bundle-key", "alice="+pubB, "--bundle-key", "bob="+pubA, "--payload-key", pubA, "--threshold", "2", "-o", dir+"/fx-policy-2.json")
	if err != nil {
		return dir, err
	}
	rel, rerr := os.ReadFile(dir + "/fx-release.tar")
	if rerr != nil {
		return dir, rerr
	}
	write("fx-truncated.tar", rel[:len(rel)*2/3], 0o644)
	damaged := append([]byte{}, rel...)
	for off := 512; off+512 <= len(damaged); off += 512 {
		if bytes.HasPrefix(damaged[off:], []byte("delta-from-")) {
			damaged[off+100] ^= 0x40 // the mode field: the header's checksum no longer matches
			break
		}
	}
	write("fx-damaged.tar", damaged, 0o644)
	tampered := append([]byte{}, rel...)
	tampered[bytes.LastIndex(tampered, []byte("CrAU"))+5000] ^= 1 // the full payload's data
	write("fx-tampered.tar", tampered, 0o644)
	return dir, err
}

// transcript is one testdata/cli/*.txt file:
//
//	# comments
//	augen ARGS...        (words split on spaces; $TMP, $VEC, $IMG expanded)
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
			img, _ := filepath.Abs(root + "image")
			expand := strings.NewReplacer("$TMP", tmp, "$VEC", vec, "$IMG", img)
			unexpand := strings.NewReplacer(tmp, "$TMP", vec, "$VEC", img, "$IMG")
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
