package signer

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"
)

// ErrPIN means no PIN could be had (none configured and no terminal).
var ErrPIN = errors.New("no PIN")

// pinSource resolves a PIN from, in order: the URI's pin-source (a file, as
// "file:PATH" or a plain path), the URI's pin-value (with a warning: it is on
// the command line), the environment variable env, and a no-echo prompt on
// /dev/tty. A PIN file is read as ReadSecretFile reads it: one that others
// can read is refused, and a trailing newline is not part of the PIN.
func pinSource(a *attrs, env, prompt string, opts *Options) ([]byte, error) {
	if src, ok := a.query["pin-source"]; ok {
		if _, both := a.query["pin-value"]; both {
			return nil, fmt.Errorf("pin-source and pin-value both given (RFC 7512 allows one)")
		}
		return ReadSecretFile(strings.TrimPrefix(src, "file:"), "pin-source")
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
	return readTTY(tty, prompt)
}

// readTTY prompts on tty and reads a line without echo.
func readTTY(tty *os.File, prompt string) ([]byte, error) {
	fmt.Fprintf(tty, "%s: ", prompt)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("%w: reading from the terminal: %v", ErrPIN, err)
	}
	return b, nil
}

// promptTwice asks for a new secret on /dev/tty, without echo, twice, and
// refuses two that differ. Without a terminal it says how else to give one.
func promptTwice(prompt, env string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: give pin-source=file:… in the URI or set %s (no terminal to ask on), or --no-auth for a key without one", ErrNoAuth, env)
	}
	defer tty.Close()
	a, err := readTTY(tty, prompt)
	if err != nil {
		return nil, err
	}
	b, err := readTTY(tty, prompt+" (again)")
	if err != nil {
		return nil, err
	}
	if string(a) != string(b) {
		return nil, errors.New("the two entries differ")
	}
	return a, nil
}
