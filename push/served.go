package push

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/omaha"
	"github.com/augen-project/augen/internal/tempfile"
	"github.com/augen-project/augen/nebraska"
	"github.com/augen-project/augen/payload/apply"
	"github.com/augen-project/augen/store"
	"github.com/augen-project/augen/verify"
)

// ServedCheck is what VerifyServed found of one served file.
type ServedCheck struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256_hex"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}

// VerifyServed downloads a package's payload and extra files as a client
// would, from the package's URL, into a private directory under tempDir,
// and verifies each: size and hashes against the package record, then the
// payload checks with pubs (the full payload applied in simulation, extras
// by ue-rs's rules). Every file is checked; the error, wrapping
// verify.ErrVerification, names the first that failed.
func VerifyServed(ctx context.Context, fetch *http.Client, pubs []crypto.PublicKey, p *nebraska.Package, tempDir string, progress augen.Progress) ([]ServedCheck, error) {
	type item struct {
		name, url, size, sha1, sha256b64, sha256hex string
		extra                                       bool
	}
	sha := ""
	if p.FlatcarAction != nil {
		sha = p.FlatcarAction.SHA256
	}
	items := []item{{name: p.Filename, url: omaha.JoinURL(p.URL, p.Filename), size: p.Size, sha1: p.Hash, sha256b64: sha}}
	for _, f := range p.ExtraFiles {
		items = append(items, item{name: f.Name, url: omaha.JoinURL(p.URL, f.Name), size: f.Size, sha1: f.Hash, sha256hex: f.Hash256, extra: true})
	}
	tmp, err := tempfile.MkdirTemp(tempDir, ".augen-status-*")
	if err != nil {
		return nil, err
	}
	defer tempfile.RemoveAll(tmp)
	var checks []ServedCheck
	var firstErr error
	for i, it := range items {
		c := ServedCheck{Name: it.name, URL: it.url}
		err := func() error {
			size, err := strconv.ParseInt(it.size, 10, 64)
			if err != nil || size <= 0 || size > bundle.MaxPayloadSize {
				return fmt.Errorf("the package records the size %q", it.size)
			}
			f, err := os.OpenFile(filepath.Join(tmp, strconv.Itoa(i)), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
			if err != nil {
				return err
			}
			defer f.Close()
			var w io.Writer = f
			if progress != nil {
				w = &progressWriter{w: f, fn: func(n int64) { progress("downloading "+it.name, n, size) }}
			}
			d, status, err := store.Download(ctx, fetch, it.url, w, size+1)
			if err != nil {
				return err
			}
			c.Size, c.SHA256 = d.Size, d.SHA256Hex()
			switch {
			case d.Size != size:
				return fmt.Errorf("%s served %d bytes (HTTP %d), Nebraska offers %d", it.url, d.Size, status, size)
			case d.SHA1Base64() != it.sha1:
				return fmt.Errorf("served SHA-1 %s (base64), Nebraska offers %s", d.SHA1Base64(), it.sha1)
			case !it.extra && d.SHA256Base64() != it.sha256b64:
				return fmt.Errorf("served SHA-256 %s, Nebraska's postinstall sha256 is %s (base64)", d.SHA256Hex(), it.sha256b64)
			case it.extra && d.SHA256Hex() != it.sha256hex:
				return fmt.Errorf("served SHA-256 %s, Nebraska's hash_sha256 is %s", d.SHA256Hex(), it.sha256hex)
			}
			res, err := verify.Payload(ctx, f, d.Size, pubs, verify.PayloadOptions{Sources: apply.Sources{TempDir: tmp}, Extra: it.extra})
			if err != nil {
				return err
			}
			c.Detail = fmt.Sprintf("%d bytes as offered, signed by %s, rebuilt", d.Size, res.Summary.Signatures[len(res.Summary.Signatures)-1].KeyFingerprint)
			if res.OSVersion != "" {
				c.Detail += ", installs " + res.OSVersion
			}
			return nil
		}()
		if err != nil {
			c.Error = err.Error()
			if firstErr == nil {
				firstErr = fmt.Errorf("%w: %s: %w", verify.ErrVerification, it.name, err)
			}
		}
		checks = append(checks, c)
	}
	return checks, firstErr
}

// progressWriter reports bytes written.
type progressWriter struct {
	w  io.Writer
	n  int64
	fn func(int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	p.fn(p.n)
	return n, err
}
