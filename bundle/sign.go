package bundle

import (
	"archive/tar"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/augen-project/augen/internal/tempfile"
)

// ReadEnvelope reads a bundle's envelope without trusting it (to inspect
// it or add a signature), passing the other members to member (may be nil).
func ReadEnvelope(r io.Reader, member func(name string, size int64, body io.Reader) error) (*Envelope, error) {
	var env *Envelope
	err := ReadTar(r, func(name string, size int64, body io.Reader) error {
		if name == EnvelopeName {
			b, err := io.ReadAll(body)
			if err != nil {
				return err
			}
			env, err = ParseEnvelope(b)
			return err
		}
		if member != nil {
			return member(name, size, body)
		}
		return nil
	})
	if err == nil && env == nil {
		err = fmt.Errorf("%w: no envelope", ErrFormat)
	}
	return env, err
}

// AddSignature copies a bundle from in to out with the envelope changed by
// sign (one more signature: a second officer, another day). The payloads,
// names and time stamps stay as they were, so the result is deterministic
// too. Payloads pass through temporary files in tmpDir.
//
// Nothing is signed that is not a release bundle: the envelope must carry
// an in-toto statement (ParseEnvelope), the statement must pass
// ParseStatement, and every member must be listed in it with its exact
// size, SHA-256 and SHA-1 (hashed while it is copied, so the bytes checked
// are the bytes written), with no subject missing. sign is shown the
// statement it signs for, once all of that held. Existing signatures are
// not judged (the signer holds no policy); verify does that.
func AddSignature(in io.Reader, out io.Writer, sign func(*Envelope, *Statement) error, tmpDir string) error {
	var members []Member
	var env *Envelope
	var st *Statement
	var mtime time.Time
	defer func() {
		for _, m := range members {
			if m.Name != EnvelopeName {
				m.cleanup()
			}
		}
	}()
	err := readTar(in, func(hdr *tar.Header, _ int64, body io.Reader) error {
		if hdr.Name == EnvelopeName {
			b, err := io.ReadAll(body)
			if err != nil {
				return err
			}
			mtime = hdr.ModTime
			if env, err = ParseEnvelope(b); err != nil {
				return err
			}
			payload, err := env.DecodedPayload()
			if err != nil {
				return fmt.Errorf("%w: %s: payload: %v", ErrFormat, EnvelopeName, err)
			}
			st, err = ParseStatement(payload)
			return err
		}
		sub, entry := st.Member(hdr.Name)
		if sub == nil || entry == nil {
			return badStatement("%s is in the bundle but not in the release statement", hdr.Name)
		}
		f, err := tempfile.Create(tmpDir, "augen-member-*")
		if err != nil {
			return err
		}
		defer f.Close()
		path := f.Name()
		m := Member{Name: hdr.Name, Size: hdr.Size, Open: func() (io.ReadCloser, error) { return os.Open(path) }, cleanup: func() { os.Remove(path); tempfile.Forget(path) }}
		members = append(members, m)
		h256, h1 := sha256.New(), sha1.New()
		n, err := io.Copy(io.MultiWriter(f, h256, h1), body)
		if err != nil {
			return err
		}
		if n != entry.Size || hex.EncodeToString(h256.Sum(nil)) != sub.Digest["sha256"] || hex.EncodeToString(h1.Sum(nil)) != sub.Digest["sha1"] {
			return badStatement("%s: %d bytes, sha256 %x; the statement says %d bytes, sha256 %s: refusing to sign", hdr.Name, n, h256.Sum(nil), entry.Size, sub.Digest["sha256"])
		}
		return nil
	})
	if err != nil {
		return err
	}
	if env == nil {
		return fmt.Errorf("%w: no envelope", ErrFormat)
	}
	for _, sub := range st.Subject {
		found := false
		for _, m := range members {
			found = found || m.Name == sub.Name
		}
		if !found {
			return badStatement("%s is in the release statement but not in the bundle: refusing to sign", sub.Name)
		}
	}
	if err := sign(env, st); err != nil {
		return err
	}
	b, err := env.Marshal()
	if err != nil {
		return err
	}
	all := append([]Member{{Name: EnvelopeName, Size: int64(len(b)), Open: bytesOpener(b)}}, members...)
	return WriteTar(out, all, mtime)
}

// Member returns the subject and the payload entry named name (nil where
// there is none).
func (s *Statement) Member(name string) (*Subject, *PayloadEntry) {
	var sub *Subject
	var entry *PayloadEntry
	for i := range s.Subject {
		if s.Subject[i].Name == name {
			sub = &s.Subject[i]
		}
	}
	for i := range s.Predicate.Payloads {
		if s.Predicate.Payloads[i].Name == name {
			entry = &s.Predicate.Payloads[i]
		}
	}
	return sub, entry
}
