package bundle

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
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
			env = &Envelope{}
			if err := json.Unmarshal(b, env); err != nil {
				return fmt.Errorf("%w: %s: %v", ErrFormat, EnvelopeName, err)
			}
			return nil
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
func AddSignature(in io.Reader, out io.Writer, sign func(*Envelope) error, tmpDir string) error {
	var members []Member
	var env *Envelope
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
			env = &Envelope{}
			mtime = hdr.ModTime
			if err := json.Unmarshal(b, env); err != nil {
				return fmt.Errorf("%w: %s: %v", ErrFormat, EnvelopeName, err)
			}
			return nil
		}
		f, err := os.CreateTemp(tmpDir, "augen-member-*")
		if err != nil {
			return err
		}
		defer f.Close()
		path := f.Name()
		m := Member{Name: hdr.Name, Size: hdr.Size, Open: func() (io.ReadCloser, error) { return os.Open(path) }, cleanup: func() { os.Remove(path) }}
		members = append(members, m)
		_, err = io.Copy(f, body)
		return err
	})
	if err != nil {
		return err
	}
	if env == nil {
		return fmt.Errorf("%w: no envelope", ErrFormat)
	}
	if err := sign(env); err != nil {
		return err
	}
	b, err := env.Marshal()
	if err != nil {
		return err
	}
	all := append([]Member{{Name: EnvelopeName, Size: int64(len(b)), Open: bytesOpener(b)}}, members...)
	return WriteTar(out, all, mtime)
}
