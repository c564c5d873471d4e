// Package augen is the root of the toolkit. It holds what every layer
// shares: the family of errors that mean "an input failed a check", and
// the one shape of progress reports.
//
// Each layer has its own sentinel errors (payload.ErrInvalid,
// unpack.ErrImage, verify.ErrVerification, …) for callers that care which
// check failed; every one of them also matches ErrRejected, so a caller
// that only needs to tell a rejected input from a failure to do the work
// (the CLI's exit status 3) asks one question:
//
//	if errors.Is(err, augen.ErrRejected) { … }
package augen

import "errors"

// ErrRejected is matched by every error saying an input is bad: a payload,
// image, patch, bundle or signature that failed a check, as opposed to
// augen failing to do its job (a missing file, a full disk).
var ErrRejected = errors.New("augen: input rejected")

// Rejection returns a new sentinel error with text msg that errors.Is
// also matches to ErrRejected. Layers declare their check failures with it.
func Rejection(msg string) error { return &rejection{msg} }

type rejection struct{ msg string }

func (r *rejection) Error() string { return r.msg }

// Is makes errors.Is(r, ErrRejected) true.
func (r *rejection) Is(target error) bool { return target == ErrRejected }

// Progress is how every long operation reports how far it is: the stage
// it is in ("compressing", "diffing", "unpacking", "uploading NAME",
// "building NAME"), and bytes done of total (0 when not known). Calls are
// never concurrent; library code is silent when Progress is nil.
type Progress func(stage string, done, total int64)

// Log receives what a library has to say besides its result, a line at a
// time: a note, or a warning (the line then starts with "warning: "). nil
// means silent. The CLI prints each line after "augen: ".
type Log func(msg string)

// Warn sends msg to log as a warning, if log is set.
func (log Log) Warn(msg string) {
	if log != nil {
		log("warning: " + msg)
	}
}

// Note sends msg to log as a note, if log is set.
func (log Log) Note(msg string) {
	if log != nil {
		log("note: " + msg)
	}
}

// StricterError marks a refusal of an input that the real client would
// accept: augen's verdict stands in for update_engine's, and where augen is
// stricter (a limit on work, an accident of the client's code that augen
// will not model) the refusal names the rule, which doc/payload-format.md
// lists. Differential tests against the client's own code count these
// refusals by Rule instead of treating them as disagreements.
type StricterError struct {
	// Rule is the rule's name as doc/payload-format.md §3.4 lists it.
	Rule string
}

func (e *StricterError) Error() string { return "stricter than the client (" + e.Rule + ")" }

// Stricter returns the StricterError for rule.
func Stricter(rule string) error { return &StricterError{Rule: rule} }

// StricterRule returns the rule of the StricterError in err's chain, or ""
// when err is not such a refusal.
func StricterRule(err error) string {
	var s *StricterError
	if errors.As(err, &s) {
		return s.Rule
	}
	return ""
}
