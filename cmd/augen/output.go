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
