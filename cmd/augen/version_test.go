package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/augen-project/augen/signer"
)

func runCapture(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// "augen version" reports the build: Go version, platform, PKCS#11; the
// text form and --version say the same.
func TestVersion(t *testing.T) {
	code, out, _ := runCapture("version", "--json")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if v.Go != runtime.Version() || v.Platform != runtime.GOOS+"/"+runtime.GOARCH || v.PKCS11 != signer.PKCS11Available || v.Version == "" {
		t.Fatalf("version %+v", v)
	}
	_, text, _ := runCapture("version")
	_, flag, _ := runCapture("--version")
	if text != flag || text != v.String()+"\n" || !strings.Contains(text, runtime.Version()) {
		t.Fatalf("version %q, --version %q", text, flag)
	}
}

// "augen help CMD" prints what "augen CMD --help" prints.
func TestHelpCommand(t *testing.T) {
	for _, cmd := range [][]string{{"payload", "build"}, {"verify"}, {"version"}} {
		code1, a, _ := runCapture(append([]string{"help"}, cmd...)...)
		code2, b, _ := runCapture(append(cmd, "--help")...)
		if code1 != exitOK || code2 != exitOK || a != b || !strings.HasPrefix(a, "Usage: augen "+strings.Join(cmd, " ")) {
			t.Fatalf("help %v: exit %d/%d, %q vs %q", cmd, code1, code2, a, b)
		}
	}
}

// Every command's --help ends its description with an example.
func TestEveryHelpHasAnExample(t *testing.T) {
	for _, c := range commands() {
		code, out, _ := runCapture(append(strings.Fields(c.name), "--help")...)
		if code != exitOK || !strings.Contains(out, "\nExample:\n  augen "+c.name) && !strings.Contains(out, "\nExamples:\n  augen "+c.name) {
			t.Errorf("augen %s --help: exit %d, no example", c.name, code)
		}
	}
}

// --delta-from takes VERSION=IMAGE, as bundle create does; the older
// IMAGE=VERSION still works, with a note.
func TestDeltaFromSyntax(t *testing.T) {
	img := "../../testdata/image/flatcar_test_image.bin.bz2"
	for _, c := range []struct {
		arg  string
		note bool
	}{{"4459.1.0=" + img, false}, {img + "=4459.1.0", true}} {
		var stderr bytes.Buffer
		e := &env{ctx: context.Background(), stderr: &stderr}
		plan, err := checkReleaseArgs(e, img, "amd64-usr", "4MiB", []string{c.arg}, nil, false)
		if err != nil || len(plan) != 1 || plan[0].version != "4459.1.0" || plan[0].image != img {
			t.Fatalf("%s: %+v, %v", c.arg, plan, err)
		}
		if got := strings.Contains(stderr.String(), "deprecated"); got != c.note {
			t.Errorf("%s: note %q", c.arg, stderr.String())
		}
	}
}

// --progress=always prints whole lines off a terminal (a CI log); never
// prints nothing; auto prints nothing off a terminal.
func TestProgressModes(t *testing.T) {
	for _, c := range []struct {
		mode string
		want string
	}{{"always", "building: 100% 200/200 MB\n"}, {"never", ""}, {"auto", ""}} {
		var stderr bytes.Buffer
		mode := c.mode
		e := &env{ctx: context.Background(), stderr: &stderr, progress: &mode}
		p, done := showProgress(e, "building")
		if p != nil {
			p("compressing", 100e6, 200e6)
			p("compressing", 200e6, 200e6)
		}
		done()
		if got := stderr.String(); !strings.HasPrefix(got, c.want) || (c.want == "") != (got == "") {
			t.Errorf("--progress=%s: %q", c.mode, got)
		}
	}
	code, _, errOut := runCapture("payload", "inspect", "x", "--progress", "sometimes")
	if code != exitUsage || !strings.Contains(errOut, "want auto, always or never") {
		t.Errorf("bad --progress: exit %d, %q", code, errOut)
	}
}

// Without a label, each stage gets its own line.
func TestProgressStages(t *testing.T) {
	var stderr bytes.Buffer
	mode := "always"
	e := &env{ctx: context.Background(), stderr: &stderr, progress: &mode}
	p, done := showProgress(e, "")
	p("unpacking a.bin", 10e6, 10e6)
	p("building full.gz", 5e6, 5e6)
	done()
	if got := stderr.String(); !strings.Contains(got, "unpacking a.bin: 100%") || !strings.Contains(got, "building full.gz: 100%") {
		t.Errorf("stages: %q", got)
	}
}

// Errors name each layer once: a truncated payload, a payload given as a
// bundle, a file of zeros given as a payload (no "payload: payload:").
func TestNoDoubledPrefixes(t *testing.T) {
	dir := t.TempDir()
	full, err := os.ReadFile(root + "vectors/full-signed.bin")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(dir+"/trunc.bin", full[:5000], 0o644)
	os.WriteFile(dir+"/zeros.tar", make([]byte, 4096), 0o644)
	for _, args := range [][]string{
		{"payload", "inspect", dir + "/trunc.bin"},
		{"payload", "verify", dir + "/trunc.bin", "--pubkey", root + "vectors/TEST-ONLY-key-a.pub.pem"},
		{"bundle", "inspect", dir + "/zeros.tar"},
		{"verify", "--policy", dir + "/zeros.tar", dir + "/zeros.tar"},
	} {
		code, _, errOut := runCapture(args...)
		if code == 0 || errOut == "" {
			t.Errorf("%v: exit %d", args, code)
		}
		for _, layer := range []string{"payload", "bundle", "verify", "apply", "unpack"} {
			if strings.Contains(errOut, layer+": "+layer+": ") {
				t.Errorf("%v: doubled prefix: %s", args, errOut)
			}
		}
	}
}
