package release

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/unpack"
)

// The files of a release folder, as Flatcar's data/download_payloads
// fetches them from the build cache (flatcar/scripts).
const (
	FolderUSR    = "flatcar_production_update.bin.bz2"
	FolderKernel = "flatcar_production_image.vmlinuz"
)

// sysextName is what download_payloads fetches as extras (its grep).
var sysextName = regexp.MustCompile(`^(oem|flatcar)-[0-9A-Za-z_.-]+\.raw$`)

// ErrFolder means a folder is not a release folder, or a file of it is
// missing.
var ErrFolder = augen.Rejection("release: not a release folder")

// Folder is a release folder as download_payloads leaves it:
// ARCH-usr/VERSION/ holding the /usr image, the kernel, the sysext images
// and a detached OpenPGP .sig of each.
type Folder struct {
	Dir string
	// Board and Version come from the folder's path (…/amd64-usr/4459.2.1).
	Board, Version string
	USR, Kernel    string
	// Sysexts are the oem-*.raw and flatcar-*.raw images, sorted.
	Sysexts []string
	// Other are files that are none of these (nor a .sig): not released.
	Other []string
}

// Files are the folder's files that are released, each of which needs
// its .sig.
func (f *Folder) Files() []string {
	return append([]string{f.USR, f.Kernel}, f.Sysexts...)
}

// ReadFolder lists a release folder. The board and version are read from
// its path; a folder named otherwise gives them "" (the caller must then
// be told them).
func ReadFolder(dir string) (*Folder, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	f := &Folder{Dir: dir}
	if v := filepath.Base(abs); semverRE.MatchString(v) {
		f.Version = v
	}
	if b := filepath.Base(filepath.Dir(abs)); bundle.Boards[b] != 0 {
		f.Board = b
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
	}
	for _, e := range entries {
		n := e.Name()
		switch {
		case n == FolderUSR || n == strings.TrimSuffix(FolderUSR, ".bz2"):
			if f.USR != "" {
				return nil, fmt.Errorf("%w: %s holds both %s and %s: give one /usr image", ErrFolder, dir, FolderUSR, strings.TrimSuffix(FolderUSR, ".bz2"))
			}
			f.USR = filepath.Join(dir, n)
		case n == FolderKernel:
			f.Kernel = filepath.Join(dir, n)
		case sysextName.MatchString(n):
			f.Sysexts = append(f.Sysexts, filepath.Join(dir, n))
		case strings.HasSuffix(n, ".sig") && names[strings.TrimSuffix(n, ".sig")]:
		default:
			f.Other = append(f.Other, n)
		}
	}
	var missing []string
	if f.USR == "" {
		missing = append(missing, FolderUSR)
	}
	if f.Kernel == "" {
		missing = append(missing, FolderKernel)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s has no %s (download_payloads leaves the /usr image, the kernel and the sysexts, each with its .sig)", ErrFolder, dir, strings.Join(missing, " and no "))
	}
	slices.Sort(f.Sysexts)
	return f, nil
}

var semverRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

// ErrSignature means a folder file's .sig is missing or does not verify.
var ErrSignature = augen.Rejection("release: a file's signature is missing or bad")

// SignatureChecks verifies the .sig beside each of files against the
// OpenPGP keys in keyFile, before any of them is used: a missing .sig is
// refused, as is one by a subkey that has expired or was revoked (unless
// opts.AllowExpired). warn is told of a subkey that expires within 30
// days of opts.Now.
func SignatureChecks(files []string, keyFile string, opts unpack.SignatureOptions, warn func(string)) ([]*unpack.Signature, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	var out []*unpack.Signature
	warned := map[string]bool{}
	for _, f := range files {
		sig := f + ".sig"
		if _, err := os.Stat(sig); err != nil {
			return nil, fmt.Errorf("%w: %s has no signature (%s): every file of the folder must carry the buildbot's .sig", ErrSignature, f, filepath.Base(sig))
		}
		s, err := unpack.VerifyFileSignature(f, sig, keyFile, opts)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSignature, err)
		}
		if !s.Expires.IsZero() && s.Expires.Sub(now) < 30*24*time.Hour && !s.Expired && !warned[s.KeyID] && warn != nil {
			warned[s.KeyID] = true
			warn(fmt.Sprintf("the signing subkey %s of %s expires on %s, in less than 30 days: the next builds need the new subkey in --signing-key", s.KeyID, s.Signer, s.Expires.Format("2006-01-02")))
		}
		if s.Expired && warn != nil && !warned[s.KeyID+"expired"] {
			warned[s.KeyID+"expired"] = true
			warn(fmt.Sprintf("%s is signed by the subkey %s, which has expired or was revoked since (allowed by --allow-expired-signing-key)", f, s.KeyID))
		}
		out = append(out, s)
	}
	return out, nil
}
