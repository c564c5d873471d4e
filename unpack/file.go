package unpack

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Checks are the checks of a CI image file made around unpacking it.
type Checks struct {
	// Signature and SigningKey: a detached OpenPGP signature of the image
	// file, and the public key it must come from; checked first.
	Signature, SigningKey string
	// Digests is CI's DIGESTS file: its SHA-512 and SHA-1 lines for the
	// image must match what was read. A clearsigned one (DIGESTS.asc) must
	// verify with SigningKey first.
	Digests string

	digestsSignedBy string
}

// DigestsCheck is the DIGESTS file an image matched: SignedBy names the
// OpenPGP key that signed it, "" for an unsigned file (which proves only
// that the image is the one the file beside it names).
type DigestsCheck struct {
	File     string `json:"file"`
	SignedBy string `json:"signed_by,omitempty"`
}

// String is how every command reports it.
func (d *DigestsCheck) String() string {
	if d.SignedBy != "" {
		return "DIGESTS signed by " + d.SignedBy + " matched"
	}
	return "DIGESTS (unsigned) matched"
}

// File unpacks the image file at path into usr, with its checks: the
// signature before anything is read, the DIGESTS file after (the file's
// size is InputSize, for Progress).
func File(ctx context.Context, path string, usr *os.File, opts Options, checks Checks) (*Result, []byte, error) {
	if checks.Signature != "" && checks.SigningKey == "" {
		return nil, nil, fmt.Errorf("a signature needs the key it must come from")
	}
	// The DIGESTS file is read, and its signature checked, before the
	// image: a forged one stops the work before it starts.
	var digests []byte
	if checks.Digests != "" {
		var err error
		if digests, checks.digestsSignedBy, err = ReadDigests(checks.Digests, checks.SigningKey); err != nil {
			return nil, nil, err
		}
	}
	signedBy := ""
	if checks.Signature != "" {
		var err error
		if signedBy, err = VerifyImageSignature(path, checks.Signature, checks.SigningKey); err != nil {
			return nil, nil, err
		}
	}
	in, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer in.Close()
	if st, err := in.Stat(); err == nil && opts.InputSize == 0 {
		opts.InputSize = st.Size()
	}
	opts.Digests = opts.Digests || checks.Digests != ""
	res, kernel, err := Unpack(ctx, bufio.NewReaderSize(in, 1<<20), usr, opts)
	if err != nil {
		return nil, nil, err
	}
	res.SignedBy = signedBy
	if checks.Digests != "" {
		if err := checkDigests(digests, checks.Digests, filepath.Base(path), res.Input); err != nil {
			return nil, nil, err
		}
		res.Digests = &DigestsCheck{File: checks.Digests, SignedBy: checks.digestsSignedBy}
	}
	return res, kernel, nil
}

// ToDir unpacks the image file at path into dir as NAME.usr and
// NAME.vmlinuz, and returns their paths.
func ToDir(ctx context.Context, path, dir, name string, opts Options, checks Checks) (usrPath, kernelPath string, res *Result, err error) {
	usrPath, kernelPath = filepath.Join(dir, name+".usr"), filepath.Join(dir, name+".vmlinuz")
	usr, err := os.Create(usrPath)
	if err != nil {
		return "", "", nil, err
	}
	defer usr.Close()
	if opts.TempDir == "" {
		opts.TempDir = dir
	}
	res, kernel, err := File(ctx, path, usr, opts, checks)
	if err != nil {
		return "", "", nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := os.WriteFile(kernelPath, kernel, 0o600); err != nil {
		return "", "", nil, err
	}
	return usrPath, kernelPath, res, nil
}

// CheckDigests compares an image's hashes with a DIGESTS file as
// Flatcar's CI writes it ("# SHA1 HASH" / "# SHA512 HASH" headers, then
// "HEX  NAME" lines). At least one SHA-1 or SHA-512 line for the image
// (named name) must be there, and every one must match; d needs SHA512
// and SHA1 (Options.Digests).
func CheckDigests(path, name string, d Digest) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return checkDigests(b, path, name, d)
}

func checkDigests(b []byte, path, name string, d Digest) error {
	section, checked := "", 0
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			section = strings.ToUpper(line)
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 || strings.TrimPrefix(f[1], "*") != name {
			continue
		}
		var want string
		switch {
		case strings.Contains(section, "SHA512"):
			want = d.SHA512
		case strings.Contains(section, "SHA1"):
			want = d.SHA1
		default:
			continue
		}
		if !strings.EqualFold(f[0], want) {
			return fmt.Errorf("%w: %s: the %s of %s is %s, the DIGESTS file says %s", ErrImage, path, strings.Trim(section, "# "), name, want, f[0])
		}
		checked++
	}
	if checked == 0 {
		return fmt.Errorf("%w: %s has no SHA-1 or SHA-512 line for %s", ErrImage, path, name)
	}
	return nil
}
