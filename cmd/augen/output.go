package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/atomicfile"
	"github.com/augen-project/augen/internal/ctxio"
	"github.com/augen-project/augen/internal/tempfile"
)

// output is where a command writes its result: a file that appears only
// when the command succeeds, or stdout for "-".
type output interface {
	io.Writer
	Commit() error
	Abort()
}

type stdoutOutput struct{ io.Writer }

func (stdoutOutput) Commit() error { return nil }
func (stdoutOutput) Abort()        {}

// directOutput is an existing device, FIFO or socket named by -o: it is
// written in place, never replaced by a renamed temporary file (which as
// root would turn /dev/null into a regular file).
type directOutput struct{ *os.File }

func (d directOutput) Commit() error { return d.Close() }
func (d directOutput) Abort()        { d.Close() }

func createOutput(e *env, path string) (output, error) {
	if path == "-" {
		if isTTY(e.stdout) {
			return nil, withHint(usagef("-o -: standard output is a terminal, and this output is binary"), "redirect it (-o - > FILE, or | into a program), or give -o FILE")
		}
		return stdoutOutput{e.stdout}, nil
	}
	return createFile(path)
}

// createText is createOutput for text (PEM, JSON), which may go to a
// terminal.
func createText(e *env, path string) (output, error) {
	if path == "-" {
		return stdoutOutput{e.stdout}, nil
	}
	return createFile(path)
}

// isTTY reports whether w is a terminal: a character device other than
// /dev/null.
func isTTY(w io.Writer) bool {
	if c, ok := w.(*countingWriter); ok {
		w = c.w
	}
	if !isTerminal(w) {
		return false
	}
	if m, ok := w.(*mutable); ok {
		w = m.w
	}
	st, err := w.(*os.File).Stat()
	null, nerr := os.Stat(os.DevNull)
	return err == nil && (nerr != nil || !os.SameFile(st, null))
}

func createFile(path string) (output, error) {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		if st.IsDir() {
			return nil, usagef("%s is a directory; give a file name", path)
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		return directOutput{f}, nil
	}
	return atomicfile.Create(path)
}

// outputFlags are the flags that name a file a command writes.
var outputFlags = []string{"output", "digest-out"}

// checkOutputs runs right after a command's flags are parsed, before any
// work: an output that is an existing directory, that is in a directory
// that does not exist, or that is the same file (device and inode) as
// anything the command line names as an input, is a usage error.
// ("augen payload build --image x -o x" would otherwise replace its input
// after a successful-looking build.) unpack's -o is a directory by design.
func checkOutputs(fs *pflag.FlagSet) error {
	if fs.Name() == "unpack" {
		return nil
	}
	for _, name := range outputFlags {
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		out := f.Value.String()
		if out == "" || out == "-" {
			continue
		}
		flag := "--" + name
		if f.Shorthand != "" {
			flag = "-" + f.Shorthand
		}
		st, err := os.Stat(out)
		if err != nil {
			if dir := filepath.Dir(out); !isDir(dir) {
				return usagef("%s %s: the directory %s does not exist", flag, out, dir)
			}
			continue
		}
		if st.IsDir() {
			return withHint(usagef("%s %s is a directory", flag, out), "give the path of a file to write, e.g. "+filepath.Join(out, "OUTPUT"))
		}
		for _, in := range inputPaths(fs, name) {
			if ist, err := os.Stat(in); err == nil && os.SameFile(st, ist) {
				return usagef("%s %s is the same file as the input %s: writing it would destroy the input", flag, out, in)
			}
		}
	}
	return nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// inputPaths lists every path the command line may read: the arguments and
// every other flag's values, with the forms flags use around paths
// (file:PATH key URIs, VERSION=FILE, USR,KERNEL).
func inputPaths(fs *pflag.FlagSet, except string) []string {
	var raw []string
	raw = append(raw, fs.Args()...)
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == except || !f.Changed {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			raw = append(raw, sv.GetSlice()...)
			return
		}
		raw = append(raw, f.Value.String())
	})
	var out []string
	for _, r := range raw {
		r = strings.TrimPrefix(r, "file:")
		out = append(out, r)
		out = append(out, strings.FieldsFunc(r, func(c rune) bool { return c == '=' || c == ',' })...)
	}
	return out
}

// writeOutput writes path ("-": stdout) through write, making the file
// appear only if write succeeds.
func writeOutput(e *env, path string, write func(w io.Writer) error) error {
	f, err := createOutput(e, path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := write(f); err != nil {
		return err
	}
	return f.Commit()
}

// writeText writes text to path ("-": stdout, a terminal too), appearing
// only whole.
func writeText(e *env, path string, b []byte) error {
	f, err := createText(e, path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(b); err != nil {
		return err
	}
	return f.Commit()
}

// writeBytes writes b to path as writeOutput does.
func writeBytes(e *env, path string, b []byte) error {
	return writeOutput(e, path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// payloadSpoolLimit bounds a payload read from standard input, which is
// spooled so that it can be authenticated before it is parsed: a bundle
// member's limit.
const payloadSpoolLimit = bundle.MaxPayloadSize

// bundleSpoolLimit bounds a bundle read from standard input: its members
// at their limits, with room for the tar headers.
const bundleSpoolLimit = bundle.MaxMembers*(bundle.MaxPayloadSize+1024) + bundle.MaxEnvelopeSize

// openSeekable opens path for reading twice (authenticate, then parse).
// "-" (standard input, or any input that is not a regular file) is first
// copied to a private temporary file, at most limit bytes, which is
// removed by the returned close function (or on interruption).
func openSeekable(e *env, path string, limit int64) (io.ReaderAt, int64, func(), error) {
	var in io.Reader = e.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, nil, err
		}
		if st.Mode().IsRegular() {
			return f, st.Size(), func() { f.Close() }, nil
		}
		defer f.Close()
		in = f
	}
	spool, err := tempfile.Create("", "augen-input-*")
	if err != nil {
		return nil, 0, nil, err
	}
	n, err := ctxio.Copy(e.ctx, spool, io.LimitReader(in, limit+1))
	if err == nil && n > limit {
		err = fmt.Errorf("%s: more than %d bytes", path, limit)
	}
	if err != nil {
		tempfile.Remove(spool)
		return nil, 0, nil, err
	}
	return spool, n, func() { tempfile.Remove(spool) }, nil
}
