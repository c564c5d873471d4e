package release

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/authenticode"
	"github.com/augen-project/augen/internal/ctxio"
	"github.com/augen-project/augen/internal/sysext"
	"github.com/augen-project/augen/internal/verity"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/generate"
	"github.com/augen-project/augen/unpack"
)

// maxUSR bounds a decompressed /usr image: Flatcar's is 1 GiB, its
// partitions at most 2 GiB.
const maxUSR = 4 << 30

// ErrKernel means the kernel is not the /usr's, or its Secure Boot
// signature is missing, broken or by an untrusted key.
var ErrKernel = augen.Rejection("release: the kernel is refused")

// openUSR takes a release folder's /usr image (decompressed into dir when
// it is bzip2) and kernel, and checks that the kernel carries the /usr's
// dm-verity root hash, as unpacking a production image does.
func openUSR(ctx context.Context, image, kernel, dir string) (string, *unpack.Result, error) {
	res := &unpack.Result{KernelFrom: kernel}
	in, err := os.Open(image)
	if err != nil {
		return "", nil, err
	}
	h := sha256.New()
	n, err := ctxio.Copy(ctx, h, in)
	in.Close()
	if err != nil {
		return "", nil, err
	}
	res.Input = unpack.Digest{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
	plain, _, err := unpack.PlainUSRImage(ctx, image, dir, maxUSR, nil)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", image, err)
	}
	usr, err := os.Open(plain)
	if err != nil {
		return "", nil, err
	}
	defer usr.Close()
	st, err := usr.Stat()
	if err != nil {
		return "", nil, err
	}
	k, err := os.Open(kernel)
	if err != nil {
		return "", nil, err
	}
	head := make([]byte, 4096)
	hn, err := io.ReadFull(k, head)
	k.Close()
	if err != nil && err != io.ErrUnexpectedEOF {
		return "", nil, fmt.Errorf("%s: %w", kernel, err)
	}
	res.Verity, err = verity.Check(usr, st.Size(), head[:hn])
	if err != nil {
		return "", nil, fmt.Errorf("%w: %s and %s: %v", ErrKernel, filepath.Base(kernel), filepath.Base(image), err)
	}
	res.USR = unpack.Digest{Size: st.Size()}
	return plain, res, nil
}

// checkSecureBoot checks the kernel's Authenticode signature. With
// certificates (or require), the kernel must be signed by one of them (or
// a key they certify); without, a signed kernel's signer is recorded and an
// unsigned one (or one that is no PE image: test kernels) recorded as none.
// A signature that is present but broken is always refused.
func checkSecureBoot(kernel string, certs []*x509.Certificate, require bool) (*bundle.SecureBoot, error) {
	f, size, err := openSized(kernel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sig, err := authenticode.Check(f, size, certs, require)
	switch {
	case errors.Is(err, authenticode.ErrUnsigned) || errors.Is(err, authenticode.ErrNotPE):
		return nil, fmt.Errorf("%w: %s is not signed for Secure Boot (%v): it boots nowhere Secure Boot is enforced; give the kernel sbsign_util.sh signed", ErrKernel, kernel, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %s: %v", ErrKernel, kernel, err)
	case sig == nil:
		return nil, nil
	}
	return &bundle.SecureBoot{Subject: sig.Subject, Fingerprint: sig.Fingerprint, TrustedBy: sig.TrustedBy}, nil
}

// openSized opens a file and says its size.
func openSized(p string) (*os.File, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// checkSysexts checks each sysext image against the /usr image usr.
func checkSysexts(ctx context.Context, usr, board string, images []string) ([]*bundle.Sysext, error) {
	if len(images) == 0 {
		return nil, nil
	}
	u, size, err := openSized(usr)
	if err != nil {
		return nil, err
	}
	defer u.Close()
	host, err := sysext.ReadHost(ctx, u, size, board)
	if err != nil {
		return nil, fmt.Errorf("%w: reading what the sysexts are checked against: %w", sysext.ErrSysext, err)
	}
	var out []*bundle.Sysext
	for _, p := range images {
		img, err := checkSysext(ctx, p, host)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

func checkSysext(ctx context.Context, p string, host *sysext.Host) (*bundle.Sysext, error) {
	f, size, err := openSized(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := sysext.Check(ctx, f, size, strings.TrimSuffix(filepath.Base(p), ".raw"), host)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return sysextEntry(img), nil
}

// sysextEntry is the statement's record of a checked sysext image.
func sysextEntry(img *sysext.Image) *bundle.Sysext {
	return &bundle.Sysext{RootHash: img.RootHash, Certificate: img.Certificate, ExtensionRelease: img.ExtensionRelease, Version: img.Version}
}

// ExtraName is the extra payload Flatcar builds from a sysext image:
// oem-azure.raw gives oem-azure.gz.
func ExtraName(image string) string {
	return strings.TrimSuffix(filepath.Base(image), ".raw") + ".gz"
}

// buildExtra builds the extra payload of a sysext image as ue-rs installs
// it (generate.BuildOptions.Extra: the image whole, checked by ue-rs's
// rules before it is finished).
func buildExtra(ctx context.Context, out, image string, sizes []int, signers []crypto.Signer, tmp string, progress augen.Progress) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	in, err := generate.OpenInput(image)
	if err != nil {
		return err
	}
	defer in.Close()
	bo := generate.BuildOptions{SignatureSizes: sizes, Sign: payload.SignWith(signers), TempDir: tmp}
	bo.Extra, bo.Image = true, in.Input
	if progress != nil {
		name := filepath.Base(out)
		bo.Progress = func(_ string, done, total int64) { progress("building "+name, done, total) }
	}
	_, err = generate.BuildFull(ctx, f, bo)
	return err
}
