package signer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// ErrPIN means no PIN could be had (none configured and no terminal).
var ErrPIN = errors.New("no PIN")

// pinSource resolves a PIN from, in order: the URI's pin-source (a file, as
// "file:PATH" or a plain path), the URI's pin-value (with a warning: it is on
// the command line), the environment variable env, and a no-echo prompt on
// /dev/tty. A trailing newline in a file is not part of the PIN.
func pinSource(a *attrs, env, prompt string, opts *Options) ([]byte, error) {
	if src, ok := a.query["pin-source"]; ok {
		if _, both := a.query["pin-value"]; both {
			return nil, fmt.Errorf("pin-source and pin-value both given (RFC 7512 allows one)")
		}
		path := strings.TrimPrefix(src, "file:")
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("pin-source: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, 4096))
		if err != nil {
			return nil, fmt.Errorf("pin-source: %w", err)
		}
		return []byte(strings.TrimRight(string(b), "\r\n")), nil
	}
	if v, ok := a.query["pin-value"]; ok {
		opts.warn("the PIN is in the key URI (pin-value): it is visible in the process list and shell history; use pin-source=file:… or " + env)
		return []byte(v), nil
	}
	if v, ok := os.LookupEnv(env); ok {
		return []byte(v), nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: set pin-source in the URI or %s (no terminal to ask on)", ErrPIN, env)
	}
	defer tty.Close()
	fmt.Fprintf(tty, "%s: ", prompt)
	pin, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("%w: reading from the terminal: %v", ErrPIN, err)
	}
	return pin, nil
}
