// Package release builds a release on the signing workstation in one call:
// the CI production image in, a signed release bundle out. It unpacks the
// image (with its checks), checks the version its /usr declares, builds
// and signs the full payload and a delta from each older image, and
// bundles them with extra payloads. Each image is unpacked once: the
// statement's input digest is the one unpacking computed.
package release

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/osrelease"
	"github.com/augen-project/augen/internal/tempfile"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/generate"
	"github.com/augen-project/augen/unpack"
)

// ErrVersion is matched (errors.Is) by a VersionError.
var ErrVersion = errors.New("release: the image is another version")

// VersionError says the image's /usr declares another version than the
// one it is released as.
type VersionError struct {
	File      string // the os-release file read
	Got, Want string
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("the image's %s says VERSION=%s, not %s", e.File, e.Got, e.Want)
}

// Is makes errors.Is(err, ErrVersion) true.
func (e *VersionError) Is(target error) bool { return target == ErrVersion }

// Signer signs payloads: a crypto.Signer that knows its signature size
// (space for it is reserved before the payload is hashed).
type Signer interface {
	crypto.Signer
	SignatureSize() int
}

// Delta is an older release to build a delta from.
type Delta struct {
	Version string
	Image   string // its CI production image, or its /usr image with Kernel
	// Kernel, when set, is the old release's kernel and Image its /usr
	// image (an older release folder's).
	Kernel string
}

// Options describe a release.
type Options struct {
	// Image is the CI production image (flatcar_production_image.bin,
	// or .bin.bz2), or, with Kernel, the /usr image of a release folder
	// (flatcar_production_update.bin.bz2).
	Image string
	// Kernel, when set, is the release's kernel (a release folder's
	// flatcar_production_image.vmlinuz, signed for Secure Boot): it must
	// carry the dm-verity root hash of the /usr image.
	Kernel string
	// Sysexts are sysext disk images (oem-*.raw, flatcar-*.raw), each
	// checked against the release's /usr (internal/sysext: its verity
	// tree, the root hash signed by a /usr/lib/verity.d certificate, its
	// extension-release) before anything is built, and shipped as the
	// extra payload Flatcar names NAME.gz.
	Sysexts []string
	// SecureBootCerts: the kernel's Authenticode signature must chain to
	// one of them (leaf or CA). RequireSecureBoot refuses an unsigned
	// kernel even without them (--official). A signed kernel's signer is
	// recorded in the statement either way.
	SecureBootCerts   []*x509.Certificate
	RequireSecureBoot bool
	// Version, Board and AppID (default Flatcar's) go into the statement.
	// An empty Board is the image's: the one its kernel's architecture
	// names (an x86 bzImage: amd64-usr; an arm64 Image: arm64-usr); a Board
	// the kernel contradicts is refused before anything is built.
	Version, Board, AppID string
	// RequiresVersion, if set, is the oldest version that may update to
	// the release directly (bundle.Release.RequiresVersion).
	RequiresVersion string
	Deltas          []Delta
	// PartitionSizes are the USR partition sizes deltas are built for,
	// one delta per source and size (generate.DeltaOptions.PartitionSize):
	// a delta applies only on machines whose partition has its size.
	// Empty means one delta per source, for partitions of the image's size.
	PartitionSizes []int64
	// Extras are payloads shipped as they are (oem-*.gz, flatcar-*.gz).
	Extras []string
	// Unpack tunes unpacking every image (TempDir and Progress are set
	// here); Checks are the new image's (signature, DIGESTS).
	Unpack unpack.Options
	Checks unpack.Checks
	// PayloadSigners sign every payload, in order: update_engine checks
	// the last. BundleSigners sign the release statement.
	PayloadSigners []Signer
	BundleSigners  []crypto.Signer
	// Augen is the tool's version, recorded in the statement; MTime stamps
	// the bundle's members.
	Augen string
	MTime time.Time
	// TempDir holds the unpacked images and payloads until they are
	// bundled ("" = os.TempDir()).
	TempDir string
	// Progress, if set, is called with the stage ("unpacking NAME",
	// "building NAME") and bytes done of total.
	Progress augen.Progress
	// Log receives notes and warnings.
	Log augen.Log
}

// Payload is one payload of the release.
type Payload struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Size int64  `json:"size"`
}

// ErrBoard means the board asked for is not the image's.
var ErrBoard = augen.Rejection("release: wrong board")

// archBoard is the board of each kernel architecture.
var archBoard = map[string]string{"amd64": "amd64-usr", "arm64": "arm64-usr"}

// boardOf returns the board of the unpacked image, checking it against
// the one asked for ("" takes the image's): the kernel's architecture,
// and FLATCAR_RELEASE_BOARD where the /usr declares it.
func boardOf(ctx context.Context, res *unpack.Result, usr, asked string) (string, error) {
	arch := ""
	if res.Verity != nil {
		arch = res.Verity.KernelArch
	}
	fromKernel := archBoard[arch]
	declared, file, err := usrBoard(ctx, usr)
	if err != nil {
		return "", err
	}
	if declared != "" && fromKernel != "" && declared != fromKernel {
		return "", fmt.Errorf("%w: the image's %s says %s, but its kernel is an %s kernel", ErrBoard, file, declared, arch)
	}
	have, why := declared, "its "+file+" says so"
	if have == "" {
		have, why = fromKernel, "its kernel is an "+arch+" kernel"
	}
	switch {
	case asked == "" && have == "":
		return "", fmt.Errorf("%w: the image names no board (no FLATCAR_RELEASE_BOARD, a kernel that is neither an x86 bzImage nor an arm64 Image): give --board", ErrBoard)
	case asked == "":
		return have, nil
	case have != "" && asked != have:
		return "", fmt.Errorf("%w: --board %s, but the image is for %s (%s): its machines could not boot it", ErrBoard, asked, have, why)
	}
	return asked, nil
}

// usrBoard is the board a USR image declares ("" for none).
func usrBoard(ctx context.Context, usr string) (board, from string, err error) {
	board, from, err = usrRead(ctx, usr, osrelease.Board)
	if errors.Is(err, osrelease.ErrNoFilesystem) || errors.Is(err, osrelease.ErrNoVersion) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("reading the image's board: %w", err)
	}
	if _, ok := bundle.Boards[board]; !ok {
		return "", "", fmt.Errorf("%w: the image's %s names the unknown board %q", ErrBoard, from, board)
	}
	return board, from, nil
}

// Result is what Build wrote.
type Result struct {
	Statement *bundle.Statement
	Payloads  []Payload
	// Image is what unpacking the new image found (for a release
	// folder: its input digest and the verity check).
	Image *unpack.Result
	// SecureBoot is the kernel's checked signature (nil: unsigned).
	SecureBoot *bundle.SecureBoot
}

// Build makes the release described by opts and writes its bundle to w.
func Build(ctx context.Context, w io.Writer, opts Options) (*Result, error) {
	if len(opts.PayloadSigners) == 0 || len(opts.BundleSigners) == 0 {
		return nil, errors.New("release: payload and bundle signers are needed")
	}
	tmp, err := tempfile.MkdirTemp(opts.TempDir, ".augen-release-*")
	if err != nil {
		return nil, err
	}
	defer tempfile.RemoveAll(tmp)
	return build(ctx, w, opts, tmp)
}

func build(ctx context.Context, w io.Writer, opts Options, tmp string) (*Result, error) {
	unpackTo := func(image, name string, checks unpack.Checks) (string, string, *unpack.Result, error) {
		uo := opts.Unpack
		uo.TempDir, uo.Progress = tmp, nil
		if opts.Progress != nil {
			stage := "unpacking " + filepath.Base(image)
			uo.Progress = func(_ string, done, total int64) { opts.Progress(stage, done, total) }
		}
		return unpack.ToDir(ctx, image, tmp, name, uo, checks)
	}
	var usr, kernel string
	var res *unpack.Result
	var err error
	if opts.Kernel != "" {
		kernel = opts.Kernel
		usr, res, err = openUSR(ctx, opts.Image, opts.Kernel, tmp)
	} else {
		usr, kernel, res, err = unpackTo(opts.Image, "new", opts.Checks)
	}
	if err != nil {
		return nil, err
	}
	if err := checkVersion(ctx, usr, opts.Version, opts.Log); err != nil {
		return nil, err
	}
	if opts.Board, err = boardOf(ctx, res, usr, opts.Board); err != nil {
		return nil, err
	}
	secureBoot, err := checkSecureBoot(kernel, opts.SecureBootCerts, opts.RequireSecureBoot)
	if err != nil {
		return nil, err
	}
	sysexts, err := checkSysexts(ctx, usr, opts.Board, opts.Sysexts)
	if err != nil {
		return nil, err
	}

	var signers []crypto.Signer
	var sizes []int
	var pubs []crypto.PublicKey
	for _, s := range opts.PayloadSigners {
		signers, sizes, pubs = append(signers, s), append(sizes, s.SignatureSize()), append(pubs, s.Public())
	}
	build := func(name, oldUSR, oldKernel string, partitionSize int64) error {
		f, err := os.Create(filepath.Join(tmp, name))
		if err != nil {
			return err
		}
		defer f.Close()
		in, closeAll, err := generate.OpenInputs(usr, kernel, oldUSR, oldKernel)
		if err != nil {
			return err
		}
		defer closeAll()
		img, k := in[0], in[1]
		var progress augen.Progress
		if opts.Progress != nil {
			progress = func(_ string, done, total int64) { opts.Progress("building "+name, done, total) }
		}
		if oldUSR == "" {
			bo := generate.BuildOptions{SignatureSizes: sizes, Sign: payload.SignWith(signers), TempDir: tmp}
			bo.Image, bo.Kernel, bo.Progress = img.Input, k.Input, progress
			_, err = generate.BuildFull(ctx, f, bo)
			return err
		}
		old, oldK := in[2], in[3]
		do := generate.DeltaBuildOptions{SignatureSizes: sizes, Sign: payload.SignWith(signers)}
		do.Old, do.New, do.OldKernel, do.Kernel = old.Delta, img.Delta, oldK.Delta, k.Delta
		do.Progress, do.Log, do.PartitionSize = progress, opts.Log, partitionSize
		_, err = generate.BuildDelta(ctx, f, do)
		return err
	}
	// Every delta source is unpacked and checked before anything is built.
	olds := make([][2]string, len(opts.Deltas))
	for i, d := range opts.Deltas {
		if c, ok := bundle.CompareVersions(d.Version, opts.Version); ok && c >= 0 {
			return nil, fmt.Errorf("%w: a delta from %s to release %s: the source must be an older release", ErrDeltaSource, d.Version, opts.Version)
		}
		// The checks (signature, DIGESTS) speak of the new image only.
		var oldUSR, oldKernel string
		var err error
		if d.Kernel != "" {
			oldKernel = d.Kernel
			oldUSR, _, err = openUSR(ctx, d.Image, d.Kernel, tmp)
		} else {
			oldUSR, oldKernel, _, err = unpackTo(d.Image, fmt.Sprintf("old%d", i), unpack.Checks{})
		}
		if err != nil {
			return nil, err
		}
		if err := checkDeltaSource(ctx, oldUSR, d, opts.Log); err != nil {
			return nil, err
		}
		olds[i] = [2]string{oldUSR, oldKernel}
	}
	files := []bundle.PayloadFile{{Path: filepath.Join(tmp, "flatcar_production_update.gz"), Name: "flatcar_production_update.gz", Kind: bundle.KindFull}}
	if err := build(files[0].Name, "", "", 0); err != nil {
		return nil, err
	}
	partitions := opts.PartitionSizes
	if len(partitions) == 0 {
		partitions = []int64{0}
	}
	for i, d := range opts.Deltas {
		oldUSR, oldKernel := olds[i][0], olds[i][1]
		for _, size := range partitions {
			name := "delta-from-" + d.Version + ".gz"
			if len(partitions) > 1 {
				name = bundle.DeltaName(d.Version, size)
			}
			if err := build(name, oldUSR, oldKernel, size); err != nil {
				return nil, err
			}
			files = append(files, bundle.PayloadFile{Path: filepath.Join(tmp, name), Name: name, Kind: bundle.KindDelta, FromVersion: d.Version})
		}
	}
	for i, raw := range opts.Sysexts {
		name := ExtraName(raw)
		if err := buildExtra(ctx, filepath.Join(tmp, name), raw, sizes, signers, tmp, opts.Progress); err != nil {
			return nil, fmt.Errorf("%s: %w", raw, err)
		}
		files = append(files, bundle.PayloadFile{Path: filepath.Join(tmp, name), Name: name, Kind: bundle.KindExtra, Sysext: sysexts[i]})
	}
	for _, x := range opts.Extras {
		files = append(files, bundle.PayloadFile{Path: x, Name: filepath.Base(x), Kind: bundle.KindExtra})
	}
	st, err := bundle.Build(w, bundle.BuildOptions{AppID: opts.AppID, Version: opts.Version, Board: opts.Board, RequiresVersion: opts.RequiresVersion, Payloads: files,
		PayloadKeys: pubs, InputImage: &bundle.Digests{Size: res.Input.Size, SHA256: res.Input.SHA256}, SecureBoot: secureBoot, Augen: opts.Augen,
		MTime: opts.MTime, Signers: opts.BundleSigners})
	if err != nil {
		return nil, err
	}
	out := &Result{Statement: st, Image: res, SecureBoot: secureBoot}
	for _, f := range files {
		fi, err := os.Stat(f.Path)
		if err != nil {
			return nil, err
		}
		out.Payloads = append(out.Payloads, Payload{Name: f.Name, Kind: f.Kind, Size: fi.Size()})
	}
	return out, nil
}

// checkVersion refuses to release an image under another version than its
// /usr declares (verify would refuse the bundle later; this says so before
// anything is built or signed). An image whose /usr declares none is let
// through with a note.
// ErrDeltaSource means a --delta-from image is not the release it is
// labelled as, or not an older one.
var ErrDeltaSource = augen.Rejection("release: wrong delta source")

// checkDeltaSource reads the old image's release version: it must be the
// delta's label (which Build checks is older than the release: a delta
// from a release to itself is no update). An old /usr that declares no
// version is noted, as for the new one.
func checkDeltaSource(ctx context.Context, usr string, d Delta, log augen.Log) error {
	got, from, err := usrVersion(ctx, usr)
	switch {
	case errors.Is(err, osrelease.ErrNoFilesystem), errors.Is(err, osrelease.ErrNoVersion):
		log.Warn(fmt.Sprintf("the delta source %s declares no release version (%v); it is not checked against %s", d.Image, err, d.Version))
		return nil
	case err != nil:
		return fmt.Errorf("reading the release version of %s: %w", d.Image, err)
	case got != d.Version:
		return fmt.Errorf("%w: --delta-from %s=%s, but that image's %s says VERSION=%s", ErrDeltaSource, d.Version, d.Image, from, got)
	}
	return nil
}

// usrVersion is the release version a USR image's filesystem declares.
func usrVersion(ctx context.Context, usr string) (version, from string, err error) {
	return usrRead(ctx, usr, osrelease.Version)
}

// usrRead opens the USR image file usr and reads a value from its /usr
// with read (osrelease.Version, osrelease.Board).
func usrRead(ctx context.Context, usr string, read func(context.Context, io.ReaderAt, int64) (string, string, error)) (string, string, error) {
	f, size, err := openSized(usr)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	return read(ctx, f, size)
}

func checkVersion(ctx context.Context, usr, version string, log augen.Log) error {
	got, from, err := usrVersion(ctx, usr)
	switch {
	case errors.Is(err, osrelease.ErrNoFilesystem), errors.Is(err, osrelease.ErrNoVersion):
		log.Warn(fmt.Sprintf("the image's /usr declares no release version (%v); it is not checked against %s", err, version))
		return nil
	case err != nil:
		return fmt.Errorf("reading the image's release version: %w", err)
	case got != version:
		return &VersionError{File: from, Got: got, Want: version}
	}
	return nil
}
