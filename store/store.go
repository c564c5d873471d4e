// Package store uploads release files to where update clients download
// them from: a directory (such as the one Nebraska serves with
// -host-flatcar-packages), a web server that takes HTTP PUT (nginx's dav
// module), or any S3-compatible object store. It also fetches a file back
// from its client-facing URL and hashes it, because a status code proves
// nothing (Nebraska answers 200 for a file that is not there).
package store

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/augen-project/augen/internal/atomicfile"
	"github.com/augen-project/augen/nebraska"
)

// Store is one upload target.
type Store interface {
	// Put uploads size bytes as key (a slash-separated path under the
	// store's root). open may be called again for a retry.
	Put(ctx context.Context, key string, size int64, open func() (io.ReadCloser, error), progress func(done int64)) error
	// PublicURL is the client-facing base URL the store implies ("" when
	// it implies none and one must be given).
	PublicURL() string
	// String names the store for logs (never with credentials).
	String() string
}

// Options configure Open.
type Options struct {
	// CAFile adds a private CA for https stores and S3 endpoints.
	CAFile string
	// Getenv reads credentials (os.Getenv by default).
	Getenv func(string) string
	// Retries for a failed upload (default 3).
	Retries int
	// PartSize is an S3 multipart upload's part size (default 16 MiB; S3
	// allows no less than 5 MiB).
	PartSize uint64
}

// Open opens a store from its URL: file:///DIR, https://HOST/PATH (or
// http:// on a trusted network), s3://BUCKET/PREFIX.
func Open(raw string, opts Options) (Store, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Retries == 0 {
		opts.Retries = 3
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("store %q: %w", raw, err)
	}
	if u.User != nil {
		return nil, fmt.Errorf("store %q: credentials do not go in the URL; use AUGEN_STORE_USER/AUGEN_STORE_PASSWORD or the S3 environment", u.Redacted())
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("store %q: want file:///ABSOLUTE/DIR", raw)
		}
		st, err := os.Stat(u.Path)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("store: %s is not a directory", u.Path)
		}
		return &dirStore{dir: u.Path}, nil
	case "http", "https":
		tr, err := transport(opts.CAFile)
		if err != nil {
			return nil, err
		}
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		return &httpStore{base: u, client: &http.Client{Transport: tr, CheckRedirect: refuseRedirect}, user: opts.Getenv("AUGEN_STORE_USER"), pass: opts.Getenv("AUGEN_STORE_PASSWORD"), retries: opts.Retries}, nil
	case "s3":
		return openS3(u, opts)
	}
	return nil, fmt.Errorf("store %q: want file:///DIR, https://HOST/PATH or s3://BUCKET/PREFIX", raw)
}

func transport(caFile string) (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 60 * time.Second // after the request was sent
	if caFile != "" {
		pool, err := nebraska.CertPool(caFile)
		if err != nil {
			return nil, err
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return t, nil
}

// cleanKey refuses keys that would leave the store's root.
func cleanKey(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || path.Clean(key) != key || strings.HasPrefix(key, "../") || key == ".." {
		return "", fmt.Errorf("store: bad key %q", key)
	}
	return key, nil
}

// dirStore writes into a directory; a file appears whole or not at all.
type dirStore struct{ dir string }

func (d *dirStore) String() string    { return "file://" + d.dir }
func (d *dirStore) PublicURL() string { return "" }

func (d *dirStore) Put(ctx context.Context, key string, size int64, open func() (io.ReadCloser, error), progress func(int64)) error {
	key, err := cleanKey(key)
	if err != nil {
		return err
	}
	dst := filepath.Join(d.dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	r, err := open()
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := atomicfile.Create(dst)
	if err != nil {
		return err
	}
	defer f.Abort()
	n, err := io.Copy(f, &progressReader{ctx: ctx, r: r, fn: progress})
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("store: %s: read %d bytes, want %d", key, n, size)
	}
	if err := f.Commit(); err != nil {
		return err
	}
	return os.Chmod(dst, 0o644)
}

// errRedirected is a redirected upload: never followed, never retried.
var errRedirected = errors.New("store: redirected")

// refuseRedirect follows no redirect of an upload: the credentials and the
// body go only to the store's own scheme, host and port (net/http would
// resend basic auth to the same host on another port or over plain http),
// and a store that moves uploads elsewhere is misconfigured, not busy.
func refuseRedirect(req *http.Request, via []*http.Request) error {
	return fmt.Errorf("%w to %s://%s%s: an upload is not redirected (is the store URL the upload endpoint?)", errRedirected, req.URL.Scheme, req.URL.Host, req.URL.Path)
}

// httpStore PUTs to a WebDAV-style server.
type httpStore struct {
	base       *url.URL
	client     *http.Client
	user, pass string
	retries    int
}

func (h *httpStore) String() string    { return h.base.String() }
func (h *httpStore) PublicURL() string { return h.base.String() }

func (h *httpStore) Put(ctx context.Context, key string, size int64, open func() (io.ReadCloser, error), progress func(int64)) error {
	key, err := cleanKey(key)
	if err != nil {
		return err
	}
	u := h.base.JoinPath(key).String()
	delay := time.Second
	for try := 0; ; try++ {
		retry, err := h.put(ctx, u, size, open, progress)
		if err == nil {
			return nil
		}
		if !retry || try >= h.retries || ctx.Err() != nil {
			return fmt.Errorf("store: PUT %s: %w", u, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay *= 2
	}
}

func (h *httpStore) put(ctx context.Context, u string, size int64, open func() (io.ReadCloser, error), progress func(int64)) (retry bool, err error) {
	r, err := open()
	if err != nil {
		return false, err
	}
	defer r.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, &progressReader{ctx: ctx, r: r, fn: progress})
	if err != nil {
		return false, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	if h.user != "" || h.pass != "" {
		req.SetBasicAuth(h.user, h.pass)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return !errors.Is(err, errRedirected), err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return false, fmt.Errorf("HTTP %d: the store redirects the upload to %q: an upload is not redirected (is the store URL the upload endpoint?)", resp.StatusCode, resp.Header.Get("Location"))
	case resp.StatusCode == http.StatusCreated, resp.StatusCode == http.StatusNoContent, resp.StatusCode == http.StatusOK:
		return false, nil
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests:
		return true, fmt.Errorf("HTTP %d", resp.StatusCode)
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
		return false, fmt.Errorf("HTTP %d: the store refused the upload (AUGEN_STORE_USER/AUGEN_STORE_PASSWORD?)", resp.StatusCode)
	case resp.StatusCode == http.StatusMethodNotAllowed:
		return false, fmt.Errorf("HTTP 405: the server does not take PUT here (nginx needs dav_methods PUT)")
	}
	return false, fmt.Errorf("HTTP %d", resp.StatusCode)
}

// progressReader reports bytes read and stops on cancellation.
type progressReader struct {
	ctx  context.Context
	r    io.Reader
	n    int64
	fn   func(int64)
	last time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.fn != nil && (err != nil || time.Since(p.last) > 100*time.Millisecond) {
		p.last = time.Now()
		p.fn(p.n)
	}
	return n, err
}

// Digests are what clients check of a file.
type Digests struct {
	Size   int64
	SHA1   []byte
	SHA256 []byte
}

// SHA1Base64 is the Omaha "hash".
func (d Digests) SHA1Base64() string { return base64.StdEncoding.EncodeToString(d.SHA1) }

// SHA256Base64 is the postinstall action's sha256.
func (d Digests) SHA256Base64() string { return base64.StdEncoding.EncodeToString(d.SHA256) }

// SHA256Hex is an extra file's hash_sha256.
func (d Digests) SHA256Hex() string { return hex.EncodeToString(d.SHA256) }

// Fetch downloads u as a client would and hashes what it got, reading at
// most limit bytes (so a store serving something huge cannot fill the
// disk or stall the check). The status is reported but proves nothing.
func Fetch(ctx context.Context, client *http.Client, u string, limit int64) (Digests, int, error) {
	return Download(ctx, client, u, io.Discard, limit)
}

// Download is Fetch that also writes what it reads to w (a temporary
// file, for a check that needs the bytes).
func Download(ctx context.Context, client *http.Client, u string, w io.Writer, limit int64) (Digests, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Digests{}, 0, err
	}
	// A download may take minutes, but never a minute without a byte.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req = req.WithContext(ctx)
	stall := time.AfterFunc(StallTimeout, cancel)
	defer stall.Stop()
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Digests{}, 0, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	h1, h256 := sha1.New(), sha256.New()
	body := &tickReader{r: resp.Body, tick: func() { stall.Reset(StallTimeout) }}
	n, err := io.Copy(io.MultiWriter(h1, h256, w), io.LimitReader(body, limit))
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("no data for %s: %w", StallTimeout, err)
	}
	if err != nil {
		return Digests{}, resp.StatusCode, fmt.Errorf("GET %s: %w", u, err)
	}
	return Digests{Size: n, SHA1: h1.Sum(nil), SHA256: h256.Sum(nil)}, resp.StatusCode, nil
}

// StallTimeout is how long Fetch waits for the server's answer or the
// next byte of it before giving up.
var StallTimeout = 60 * time.Second

// tickReader calls tick after every read that returned data.
type tickReader struct {
	r    io.Reader
	tick func()
}

func (p *tickReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.tick()
	}
	return n, err
}

// HTTPClient is a client for Fetch with the CA file's roots and timeouts
// on connecting and on the answer's headers.
func HTTPClient(caFile string) (*http.Client, error) {
	tr, err := transport(caFile)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: tr}, nil
}
