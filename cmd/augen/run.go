package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/bsdiff"
	"github.com/augen-project/augen/internal/pbzip2"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/apply"
	"github.com/augen-project/augen/signer"
	"github.com/augen-project/augen/unpack"
	"github.com/augen-project/augen/verify"
)

// Exit codes (DESIGN.md): data to stdout, everything else to stderr.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitVerify  = 3
	// exitBrokenPipe is 128 + SIGPIPE, as a shell reports a pipe closed
	// under a writer.
	exitBrokenPipe = 141
	programName    = "augen"
	globalUsage    = `augen builds, signs and verifies Flatcar Container Linux update payloads.

Usage:
  augen <command> [flags]

Commands:
  release           CI image in, signed release bundle out (unpack, payloads, sign, bundle)
  verify            verify a release bundle against a trust policy
  bundle create     make a release bundle from payloads built already
  bundle inspect    show what a bundle holds (without verifying it)
  bundle sign       add a signature to a bundle (a second officer)
  policy init       write a starting trust policy from public keys
  push              publish a verified bundle: upload, register, point a channel, probe
  push status       show what a channel of the update service serves now
  payload build     build a full update payload from a USR image (and kernel)
  payload inspect   show what a payload holds
  payload verify    check a payload's rules, signature, and rebuild its targets
  payload digest    prepare a payload for offline signing (two-pass, step 1)
  payload attach    attach offline signatures (two-pass, step 2)
  unpack            extract and check USR-A and the kernel from a production image
  sign              sign a payload digest with one key (signing ceremonies)
  key pubkey        print a key's public half and fingerprint
  key generate      create a signing key inside an HSM (PKCS#11) or a TPM
  key import        import an RSA key into a TPM (restore from a backup)
  key list          list the keys in a PKCS#11 token
  version           print augen's version

Run "augen <command> --help" for a command's flags.
Exit codes: 0 success, 1 failure, 2 usage error, 3 verification failed.
`
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "devel"

// env carries the standard streams through a command.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// usageError is a problem with the command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// hinted attaches a hint line to an error.
type hinted struct {
	err  error
	hint string
}

func (h hinted) Error() string { return h.err.Error() }
func (h hinted) Unwrap() error { return h.err }

func withHint(err error, hint string) error { return hinted{err, hint} }

type command struct {
	name string
	help string
	run  func(e *env, args []string) error
}

func commands() []command {
	return []command{
		{"payload build", "build a full update payload", payloadBuild},
		{"payload inspect", "show what a payload holds", payloadInspect},
		{"payload verify", "verify a payload", payloadVerify},
		{"payload digest", "prepare a payload for offline signing", payloadDigest},
		{"payload attach", "attach offline signatures", payloadAttach},
		{"release", "build a signed release bundle from a CI image", releaseCmd},
		{"verify", "verify a release bundle", verifyCmd},
		{"bundle create", "make a release bundle", bundleCreate},
		{"bundle inspect", "show a release bundle", bundleInspect},
		{"bundle sign", "add a signature to a bundle", bundleSign},
		{"policy init", "write a starting trust policy", policyInit},
		{"push", "publish a release bundle", pushCmd},
		{"unpack", "unpack a production image", unpackCmd},
		{"sign", "sign a digest", signCmd},
		{"key pubkey", "print a public key", keyPubkey},
		{"key generate", "generate a key", keyGenerate},
		{"key import", "import a key into a TPM", keyImport},
		{"key list", "list token keys", keyList},
		{"version", "print the version", versionCmd},
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, globalUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return report(e, c.run(e, args[len(words):]))
		}
	}
	switch args[0] {
	case "payload":
		fmt.Fprintf(stderr, "%s: error: unknown payload command %q\n%s: hint: commands are build, inspect, verify, digest, attach\n", programName, strings.Join(args[1:], " "), programName)
		return exitUsage
	case "key":
		fmt.Fprintf(stderr, "%s: error: unknown key command %q\n%s: hint: commands are pubkey, generate, import, list\n", programName, strings.Join(args[1:], " "), programName)
		return exitUsage
	}
	fmt.Fprintf(stderr, "%s: error: unknown command %q\n%s: hint: run \"augen --help\"\n", programName, args[0], programName)
	return exitUsage
}

// report prints err as one "augen: error:" line (plus a hint) and maps it to
// an exit code.
func report(e *env, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	// Whoever read our output went away: main reports it as SIGPIPE.
	if errors.Is(err, syscall.EPIPE) {
		return exitBrokenPipe
	}
	fmt.Fprintf(e.stderr, "%s: error: %s\n", programName, oneLine(err.Error()))
	var h hinted
	if errors.As(err, &h) && h.hint != "" {
		fmt.Fprintf(e.stderr, "%s: hint: %s\n", programName, h.hint)
	}
	var u usageError
	switch {
	case errors.As(err, &u), errors.Is(err, apply.ErrNeedSource):
		return exitUsage
	case isVerification(err):
		return exitVerify
	}
	return exitFailure
}

// isVerification reports whether err means "the payload is bad" rather than
// "augen could not do its job".
func isVerification(err error) bool {
	return errors.Is(err, payload.ErrInvalid) || errors.Is(err, payload.ErrSignature) ||
		errors.Is(err, apply.ErrApply) || errors.Is(err, apply.ErrMismatch) || errors.Is(err, unpack.ErrImage) ||
		errors.Is(err, verify.ErrVerification) || errors.Is(err, bundle.ErrFormat) || errors.Is(err, bundle.ErrStatement) || errors.Is(err, pbzip2.ErrCorrupt) || errors.Is(err, bsdiff.ErrCorrupt)
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// newFlags makes a command's FlagSet with help that goes to stdout.
func newFlags(e *env, name, usage string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprint(e.stdout, usage)
		fmt.Fprintf(e.stdout, "\nFlags:\n%s", fs.FlagUsages())
	}
	return fs
}

// parse parses flags, turning pflag's errors into usage errors.
func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err // pflag has printed the usage
		}
		return withHint(usagef("%v", err), fmt.Sprintf("run \"augen %s --help\"", fs.Name()))
	}
	return checkOutputs(fs)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a terminal, where progress is shown.
func isTerminal(w io.Writer) bool {
	if m, ok := w.(*mutable); ok {
		w = m.w
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress returns a callback drawing a one-line progress display on a
// terminal (percent, amount, rate, time left), or nil elsewhere: library
// code stays silent.
func progress(e *env, what string) (func(done, total int64), func()) {
	p, end := progressOut(e, what)
	if p == nil {
		return nil, end
	}
	return func(done, total int64) { p(done, total, -1) }, end
}

// progressOut is progress with a second count (bytes written, for unpack).
func progressOut(e *env, what string) (func(done, total, out int64), func()) {
	if !isTerminal(e.stderr) {
		return nil, func() {}
	}
	start := time.Now()
	var last time.Time
	drawn := false
	return func(done, total, out int64) {
			now := time.Now()
			if now.Sub(last) < 200*time.Millisecond && done < total {
				return
			}
			last, drawn = now, true
			line := fmt.Sprintf("%s: %d/%d MB", what, done/1e6, total/1e6)
			if total > 0 {
				line = fmt.Sprintf("%s: %3d%% %s", what, done*100/total, line[len(what)+2:])
			}
			if out >= 0 {
				line += fmt.Sprintf(", %d MB out", out/1e6)
			}
			if secs := now.Sub(start).Seconds(); secs > 0.5 && done > 0 {
				rate := float64(done) / secs
				line += fmt.Sprintf(", %.0f MB/s", rate/1e6)
				if total > done {
					line += fmt.Sprintf(", %s left", (time.Duration(float64(total-done)/rate) * time.Second).Round(time.Second))
				}
			}
			fmt.Fprintf(e.stderr, "\r\033[K%s", line)
		}, func() {
			if drawn {
				fmt.Fprint(e.stderr, "\r\033[K")
			}
		}
}

// checkOfficial enforces --official: hardware keys only.
func checkOfficial(official bool, uris []string, insecure bool) error {
	if !official {
		return nil
	}
	if insecure {
		return usagef("--official and --allow-insecure-key-file exclude each other")
	}
	for _, u := range uris {
		if strings.HasPrefix(u, "file:") {
			return withHint(usagef("--official refuses key files (%s)", u), "official payloads are signed with keys held in an HSM (pkcs11:) or a TPM (tpm:)")
		}
	}
	return nil
}

// openKeys opens every --key URI in order.
func openKeys(e *env, uris []string, opts *signer.Options) ([]signer.Signer, error) {
	var keys []signer.Signer
	for _, u := range uris {
		k, err := signer.Open(e.ctx, u, opts)
		if err != nil {
			closeKeys(keys)
			if errors.Is(err, signer.ErrInsecure) {
				return nil, withHint(err, "chmod 600 the key file; --allow-insecure-key-file accepts it anyway (never for official keys)")
			}
			return nil, err
		}
		if _, err := payload.SignatureSize(k.Public()); err != nil {
			closeKeys(append(keys, k))
			return nil, fmt.Errorf("key %s: %w", u, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func closeKeys(keys []signer.Signer) {
	for _, k := range keys {
		k.Close()
	}
}

func versionCmd(e *env, args []string) error {
	fs := newFlags(e, "version", "Usage: augen version\n\nPrints augen's version.\n")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("version takes no arguments")
	}
	fmt.Fprintf(e.stdout, "augen %s\n", version)
	return nil
}
