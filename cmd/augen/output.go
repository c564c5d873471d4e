package main

import (
	"io"

	"github.com/augen-project/augen/internal/atomicfile"
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

func createOutput(e *env, path string) (output, error) {
	if path == "-" {
		return stdoutOutput{e.stdout}, nil
	}
	return atomicfile.Create(path)
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

// writeBytes writes b to path as writeOutput does.
func writeBytes(e *env, path string, b []byte) error {
	return writeOutput(e, path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}
