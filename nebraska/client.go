package nebraska

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// MaxResponse bounds every admin API response read into memory.
const MaxResponse = 16 << 20

// Options configure a Client.
type Options struct {
	// Token is sent as "Authorization: Bearer" (OIDC or GitHub tokens).
	// It never appears in errors or logs.
	Token string
	// CAFile adds a private CA (PEM) to the system roots.
	CAFile string
	// Timeout bounds each request (default 60s).
	Timeout time.Duration
	// Retries is how often an idempotent call is retried after a network
	// error or a 429/502/503/504 (default 3; -1 for none).
	Retries int
	// Backoff is the first retry's delay, doubled each time (default 500ms).
	Backoff time.Duration
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
}

// Client talks to one Nebraska server.
type Client struct {
	base    *url.URL
	http    *http.Client
	token   string
	retries int
	backoff time.Duration
}

// ErrAPI is wrapped by every error a server answer caused.
var ErrAPI = errors.New("nebraska")

// APIError is a non-2xx answer (or an answer that is not what the API
// promises), turned into a message a release engineer can act on.
type APIError struct {
	Method, Path string
	Status       int
	// Message is the server's own reason, when it gave one (400s).
	Message string
}

func (e *APIError) Error() string {
	what := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.Path, e.Status)
	switch {
	case e.Status == http.StatusUnauthorized:
		return what + ": not authenticated; give a token with --token-file or AUGEN_TOKEN"
	case e.Status == http.StatusForbidden:
		return what + ": the token may not do this (writes need an admin role)"
	case e.Message != "":
		return what + ": " + e.Message
	case e.Status == http.StatusInternalServerError:
		return what + " with no reason given (Nebraska logs the cause only on the server)"
	case e.Status == http.StatusNotFound:
		return what + ": not found"
	}
	return what
}

func (e *APIError) Unwrap() error { return ErrAPI }

// New makes a client for the server at base (http or https).
func New(base string, opts Options) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		if err == nil && u.User != nil {
			base = u.Redacted()
		}
		return nil, fmt.Errorf("server %q: want an http:// or https:// URL", base)
	}
	if u.User != nil {
		return nil, fmt.Errorf("server %q: credentials do not go in the URL (they would show in logs and errors); give a token with --token-file or AUGEN_TOKEN", u.Redacted())
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if strings.ContainsAny(opts.Token, "\r\n") {
		return nil, errors.New("the token holds a line break")
	}
	tr := opts.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		if opts.CAFile != "" {
			pool, err := CertPool(opts.CAFile)
			if err != nil {
				return nil, err
			}
			t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		tr = t
	}
	c := &Client{base: u, token: opts.Token, retries: opts.Retries, backoff: opts.Backoff}
	if c.retries == 0 {
		c.retries = 3
	} else if c.retries < 0 {
		c.retries = 0
	}
	if c.backoff == 0 {
		c.backoff = 500 * time.Millisecond
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	c.http = &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: c.checkRedirect}
	return c, nil
}

// checkRedirect follows a redirect only to the exact scheme, host and
// port of the server: net/http would keep the Authorization header on a
// redirect to the same host over plain http, and the token must only ever
// go where --server says.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Scheme != c.base.Scheme || req.URL.Host != c.base.Host {
		return fmt.Errorf("the server redirects to %s://%s, not %s://%s: not followed (the token goes only to --server)", req.URL.Scheme, req.URL.Host, c.base.Scheme, c.base.Host)
	}
	return nil
}

// CertPool is the system roots plus the PEM certificates in file.
func CertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// URL is the server's base URL.
func (c *Client) URL() string { return c.base.String() }

// HTTPClient is the client's HTTP client (same TLS settings), for the
// Omaha probe.
func (c *Client) HTTPClient() *http.Client { return c.http }

// do sends one call and decodes a JSON answer into out (if not nil).
// Idempotent calls (GET, PUT) are retried on network errors and on
// 429/502/503/504; POST never is.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	tries := 1
	if method == http.MethodGet || method == http.MethodPut {
		tries += c.retries
	}
	delay := c.backoff
	var err error
	for try := 1; ; try++ {
		var retry bool
		retry, err = c.once(ctx, method, u.String(), path, body, out)
		if err == nil || !retry || try >= tries {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay *= 2
	}
}

func (c *Client) once(ctx context.Context, method, u, path string, body []byte, out any) (retry bool, err error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// Only the admin API needs the token; /config and Omaha never see it.
	if c.token != "" && strings.HasPrefix(path, "/api/") {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return ctx.Err() == nil && !isTLS(err), fmt.Errorf("%s %s: %w", method, path, cleanNetErr(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return true, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if len(raw) > MaxResponse {
		return false, &APIError{Method: method, Path: path, Status: resp.StatusCode, Message: fmt.Sprintf("answer larger than %d bytes", MaxResponse)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &APIError{Method: method, Path: path, Status: resp.StatusCode}
		var m struct {
			Message string `json:"message"`
			Error   string `json:"error"`
		}
		if isJSON(resp.Header) && json.Unmarshal(raw, &m) == nil {
			e.Message = firstNonEmpty(m.Message, m.Error)
		}
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true, e
		}
		return false, e
	}
	if out == nil {
		return false, nil
	}
	if !isJSON(resp.Header) {
		return false, &APIError{Method: method, Path: path, Status: resp.StatusCode,
			Message: fmt.Sprintf("answered with %q, not JSON (is the server URL Nebraska's?)", resp.Header.Get("Content-Type"))}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return false, &APIError{Method: method, Path: path, Status: resp.StatusCode, Message: "answer is not the JSON the API promises: " + err.Error()}
	}
	return false, nil
}

func isJSON(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

func isTLS(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var rh tls.RecordHeaderError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &rh)
}

// cleanNetErr drops the URL from a *url.Error (the caller names the call)
// and says what a TLS failure means.
func cleanNetErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if isTLS(err) {
		return fmt.Errorf("TLS: %w (for a private CA, give --ca-file)", err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("timed out: %w", err)
	}
	return err
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// list decodes a list answer: {"totalCount":N,"count":N,"<key>":[...]|null},
// or a bare array as some older servers sent.
func list[T any](raw json.RawMessage, key string) (items []T, total int, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		err = json.Unmarshal(raw, &items)
		return items, len(items), err
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, 0, err
	}
	if t, ok := env["totalCount"]; ok {
		if err := json.Unmarshal(t, &total); err != nil {
			return nil, 0, fmt.Errorf("totalCount: %w", err)
		}
	}
	if v, ok := env[key]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &items); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", key, err)
		}
	}
	if _, ok := env["totalCount"]; !ok {
		total = len(items)
	}
	return items, total, nil
}

// Bounds on one list walked page by page: a server (or something posing
// as one) that sends pages without end must not exhaust memory or time.
// Each page is also at most MaxResponse bytes.
var (
	MaxListItems = 100_000
	MaxListBytes = int64(64 << 20)
	MaxListPages = 1_000
	MaxListTime  = 2 * time.Minute
)

// ErrListBound is wrapped when a list exceeds one of the bounds.
var ErrListBound = errors.New("nebraska: list too long")

// pages walks every page of a list, calling keep on each item as it comes;
// only the items keep returns true for are retained, so the memory a walk
// takes is one page plus what the caller keeps. The walk stops at the
// first bound exceeded: MaxListItems items, MaxListBytes bytes,
// MaxListPages pages or MaxListTime, whatever the server says its total
// is.
func pages[T any](ctx context.Context, c *Client, path, key string, q url.Values, keep func(*T) bool) ([]T, error) {
	const perPage = 100
	ctx, cancel := context.WithTimeout(ctx, MaxListTime)
	defer cancel()
	var kept []T
	items, size := 0, int64(0)
	bound := func(what string) error {
		return fmt.Errorf("%w: GET %s: more than %s; the walk stopped (is --server a Nebraska server?)", ErrListBound, path, what)
	}
	for page := 1; ; page++ {
		if page > MaxListPages {
			return nil, bound(fmt.Sprintf("%d pages", MaxListPages))
		}
		qq := url.Values{}
		for k, v := range q {
			qq[k] = v
		}
		qq.Set("page", strconv.Itoa(page))
		qq.Set("perpage", strconv.Itoa(perPage))
		var raw json.RawMessage
		if err := c.do(ctx, http.MethodGet, path, qq, nil, &raw); err != nil {
			if ctx.Err() == context.DeadlineExceeded {
				return nil, bound(MaxListTime.String())
			}
			return nil, err
		}
		if size += int64(len(raw)); size > MaxListBytes {
			return nil, bound(fmt.Sprintf("%d bytes", MaxListBytes))
		}
		got, total, err := list[T](raw, key)
		raw = nil
		if err != nil {
			return nil, &APIError{Method: http.MethodGet, Path: path, Status: 200, Message: "unexpected list: " + err.Error()}
		}
		if items += len(got); items > MaxListItems {
			return nil, bound(fmt.Sprintf("%d items", MaxListItems))
		}
		for i := range got {
			if keep == nil || keep(&got[i]) {
				kept = append(kept, got[i])
			}
		}
		if len(got) == 0 || items >= total {
			return kept, nil
		}
	}
}

func appPath(app string) string { return "/api/apps/" + url.PathEscape(app) }

// Config is GET /config (no auth): the server's version and auth mode.
func (c *Client) Config(ctx context.Context) (map[string]any, error) {
	var m map[string]any
	err := c.do(ctx, http.MethodGet, "/config", nil, nil, &m)
	return m, err
}

// App reads an application with its groups and channels.
func (c *Client) App(ctx context.Context, app string) (*App, error) {
	var a App
	if err := c.do(ctx, http.MethodGet, appPath(app), nil, nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Channels lists every channel of app.
func (c *Client) Channels(ctx context.Context, app string) ([]Channel, error) {
	return pages[Channel](ctx, c, appPath(app)+"/channels", "channels", nil, nil)
}

// Channel reads one channel.
func (c *Client) Channel(ctx context.Context, app, id string) (*Channel, error) {
	var ch Channel
	if err := c.do(ctx, http.MethodGet, appPath(app)+"/channels/"+url.PathEscape(id), nil, nil, &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// FindChannel finds a channel by exact name and arch (nil if none).
func (c *Client) FindChannel(ctx context.Context, app, name string, arch int) (*Channel, error) {
	chs, err := pages(ctx, c, appPath(app)+"/channels", "channels", nil, func(ch *Channel) bool { return ch.Name == name && ch.Arch == arch })
	if err != nil || len(chs) == 0 {
		return nil, err
	}
	return &chs[0], nil
}

// PutChannel replaces a channel. Send every field: a missing package id
// unpublishes the channel.
func (c *Client) PutChannel(ctx context.Context, app, id string, cfg ChannelConfig) (*Channel, error) {
	var ch Channel
	if err := c.do(ctx, http.MethodPut, appPath(app)+"/channels/"+url.PathEscape(id), nil, cfg, &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// CreateChannel creates a channel (admin setup).
func (c *Client) CreateChannel(ctx context.Context, app string, cfg ChannelConfig) (*Channel, error) {
	var ch Channel
	if err := c.do(ctx, http.MethodPost, appPath(app)+"/channels", nil, cfg, &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// CreateGroup creates a group (admin setup).
func (c *Client) CreateGroup(ctx context.Context, app string, cfg GroupConfig) (*Group, error) {
	var g Group
	if err := c.do(ctx, http.MethodPost, appPath(app)+"/groups", nil, cfg, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// FindPackage finds the package with exactly this version and arch (nil if
// none). searchVersion is a substring match, so the answer is filtered.
func (c *Client) FindPackage(ctx context.Context, app, version string, arch int) (*Package, error) {
	pkgs, err := pages(ctx, c, appPath(app)+"/packages", "packages", url.Values{"searchVersion": {version}}, func(p *Package) bool { return p.Version == version && p.Arch == arch })
	if err != nil || len(pkgs) == 0 {
		return nil, err
	}
	return &pkgs[0], nil
}

// Package reads one package.
func (c *Client) Package(ctx context.Context, app, id string) (*Package, error) {
	var p Package
	if err := c.do(ctx, http.MethodGet, appPath(app)+"/packages/"+url.PathEscape(id), nil, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// CreatePackage creates a package. It is never retried: a duplicate
// (version, arch) is an HTTP 500 without a reason, so callers look the
// package up first.
func (c *Client) CreatePackage(ctx context.Context, app string, cfg PackageConfig) (*Package, error) {
	if cfg.ChannelsBlacklist == nil {
		cfg.ChannelsBlacklist = []string{}
	}
	var p Package
	if err := c.do(ctx, http.MethodPost, appPath(app)+"/packages", nil, cfg, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ErrNoFloors means the server has no floors API (Nebraska before
// multi-step updates): its channels have no floors.
var ErrNoFloors = errors.New("nebraska: the server has no floors (multi-step updates)")

// Floors lists a channel's floor packages (oldest first, as the server
// sorts them by version), each with IsFloor and its FloorReason. A server
// without the floors API answers ErrNoFloors.
func (c *Client) Floors(ctx context.Context, channelID string) ([]Package, error) {
	fl, err := pages[Package](ctx, c, "/api/channels/"+url.PathEscape(channelID)+"/floors", "packages", nil, nil)
	var ae *APIError
	if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusMethodNotAllowed) &&
		(ae.Message == "" || ae.Message == "Not Found" || ae.Message == "Method Not Allowed") {
		// The router's own answer for a path it has no handler for.
		return nil, ErrNoFloors
	}
	return fl, err
}

// SetFloor marks a package as a floor of a channel with a reason (PUT is
// idempotent; it replaces the reason, and one left out is cleared).
func (c *Client) SetFloor(ctx context.Context, channelID, packageID, reason string) error {
	body := struct {
		Reason string `json:"floor_reason"`
	}{reason}
	return c.do(ctx, http.MethodPut, "/api/channels/"+url.PathEscape(channelID)+"/floors/"+url.PathEscape(packageID), nil, body, nil)
}
