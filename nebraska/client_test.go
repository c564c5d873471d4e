package nebraska_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/augen-project/augen/nebraska"
	"github.com/augen-project/augen/nebraska/nebraskatest"
)

var ctx = context.Background()

func newClient(t *testing.T, url string, opts nebraska.Options) *nebraska.Client {
	t.Helper()
	if opts.Backoff == 0 {
		opts.Backoff = 1
	}
	c, err := nebraska.New(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pkgConfig(version string) nebraska.PackageConfig {
	return nebraska.PackageConfig{ApplicationID: nebraska.FlatcarAppID, Arch: 1, Type: 1, Version: version, URL: "http://x/", Filename: "f.gz",
		Description: "d", Size: "1", Hash: "h", FlatcarAction: &nebraska.FlatcarActionConf{SHA256: "s"}}
}

// searchVersion matches substrings; FindPackage returns only the exact
// version and arch.
func TestFindPackageExact(t *testing.T) {
	s := nebraskatest.Start(t)
	c := newClient(t, s.URL, nebraska.Options{})
	for _, v := range []string{"9999.1.0", "19999.1.0", "9999.1.0-rc1"} {
		if _, err := c.CreatePackage(ctx, nebraska.FlatcarAppID, pkgConfig(v)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := c.FindPackage(ctx, nebraska.FlatcarAppID, "9999.1.0", 1)
	if err != nil || p == nil || p.Version != "9999.1.0" {
		t.Fatalf("%+v %v", p, err)
	}
	if p, err := c.FindPackage(ctx, nebraska.FlatcarAppID, "9999.1.0", 2); err != nil || p != nil {
		t.Fatalf("other arch: %+v %v", p, err)
	}
	if p, err := c.FindPackage(ctx, nebraska.FlatcarAppID, "1.2.3", 1); err != nil || p != nil {
		t.Fatalf("absent (null list): %+v %v", p, err)
	}
	// Paging: more channels than a page holds are all read.
	for i := 0; i < 12; i++ {
		if _, err := c.CreateChannel(ctx, nebraska.FlatcarAppID, nebraska.ChannelConfig{Name: "extra-" + string(rune('a'+i)), Color: "#000000", Arch: 1, ApplicationID: nebraska.FlatcarAppID}); err != nil {
			t.Fatal(err)
		}
	}
	chs, err := c.Channels(ctx, nebraska.FlatcarAppID)
	if err != nil || len(chs) != 20 {
		t.Fatalf("%d channels, %v", len(chs), err)
	}
}

// The recorded error shapes become messages that say what happened.
func TestErrors(t *testing.T) {
	s := nebraskatest.Start(t)
	c := newClient(t, s.URL, nebraska.Options{})
	if _, err := c.CreatePackage(ctx, nebraska.FlatcarAppID, pkgConfig("9999.1.0")); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreatePackage(ctx, nebraska.FlatcarAppID, pkgConfig("9999.1.0"))
	var ae *nebraska.APIError
	if !errors.As(err, &ae) || ae.Status != 500 || !strings.Contains(err.Error(), "no reason given") {
		t.Fatalf("duplicate: %v", err)
	}
	s.Token = "secret-admin-token"
	c2 := newClient(t, s.URL, nebraska.Options{Token: "wrong-token-value"})
	_, err = c2.App(ctx, nebraska.FlatcarAppID)
	if !errors.As(err, &ae) || ae.Status != 403 || strings.Contains(err.Error(), "wrong-token-value") {
		t.Fatalf("wrong token: %v", err)
	}
	_, err = newClient(t, s.URL, nebraska.Options{}).App(ctx, nebraska.FlatcarAppID)
	if !strings.Contains(err.Error(), "HTTP 401: not authenticated") {
		t.Fatalf("no token: %v", err)
	}
	if _, err := nebraska.New(s.URL, nebraska.Options{Token: "a\nb"}); err == nil {
		t.Fatal("a token with a line break was accepted")
	}
}

// GET and PUT are retried after a 503, POST never.
func TestRetries(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"x","name":"dev-channel","arch":1,"package_id":null}`))
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, nebraska.Options{})
	if ch, err := c.Channel(ctx, "a", "x"); err != nil || ch.Name != "dev-channel" || n.Load() != 3 {
		t.Fatalf("GET after two 503s: %v, %d tries", err, n.Load())
	}
	n.Store(0)
	if _, err := c.CreatePackage(ctx, "a", pkgConfig("1.0.0")); err == nil || n.Load() != 1 {
		t.Fatalf("POST: %v, %d tries", err, n.Load())
	}
}

// An HTML page (a proxy, the wrong URL) is not taken for an answer.
func TestNotJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>login</html>"))
	}))
	defer srv.Close()
	if _, err := newClient(t, srv.URL, nebraska.Options{}).App(ctx, "a"); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Fatalf("%v", err)
	}
}

// endless serves list pages without end: each page perPage channels and a
// total that never comes.
func endless(t *testing.T, pad int) (*httptest.Server, *atomic.Int64) {
	var served atomic.Int64
	filler := strings.Repeat("x", pad)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("Content-Type", "application/json")
		var b strings.Builder
		b.WriteString(`{"totalCount":1000000000,"count":100,"channels":[`)
		for i := 0; i < 100; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"id":"` + filler + `","name":"other","arch":1}`)
		}
		b.WriteString(`]}`)
		w.Write([]byte(b.String()))
	}))
	t.Cleanup(srv.Close)
	return srv, &served
}

// A list walked page by page is bounded in items, bytes and pages, and
// keeps only what its caller asks for.
func TestListBounds(t *testing.T) {
	for _, c := range []struct {
		name  string
		pad   int
		set   func()
		want  string
		pages int64
	}{
		{"items", 0, func() { nebraska.MaxListItems = 550 }, "550 items", 6},
		{"bytes", 40 << 10, func() {}, "bytes", 64<<20/(100*(40<<10)) + 1},
		{"pages", 0, func() { nebraska.MaxListPages = 7 }, "7 pages", 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func(i int, b int64, p int) {
				nebraska.MaxListItems, nebraska.MaxListBytes, nebraska.MaxListPages = i, b, p
			}(nebraska.MaxListItems, nebraska.MaxListBytes, nebraska.MaxListPages)
			c.set()
			srv, served := endless(t, c.pad)
			cl := newClient(t, srv.URL, nebraska.Options{})
			ch, err := cl.FindChannel(ctx, nebraska.FlatcarAppID, "dev-channel", 1)
			if !errors.Is(err, nebraska.ErrListBound) || !strings.Contains(err.Error(), c.want) || ch != nil {
				t.Fatalf("%v, %v", ch, err)
			}
			if got := served.Load(); got > c.pages+1 {
				t.Fatalf("%d pages fetched, want at most %d", got, c.pages+1)
			}
		})
	}
}

// Time bounds the walk too: a server that answers slowly, page after
// page, is left after MaxListTime.
func TestListTimeBound(t *testing.T) {
	defer func(d time.Duration) { nebraska.MaxListTime = d }(nebraska.MaxListTime)
	nebraska.MaxListTime = 300 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"totalCount":1000000000,"count":1,"channels":[{"id":"x","name":"other","arch":1}]}`))
	}))
	defer srv.Close()
	cl := newClient(t, srv.URL, nebraska.Options{})
	if _, err := cl.FindChannel(ctx, nebraska.FlatcarAppID, "dev-channel", 1); !errors.Is(err, nebraska.ErrListBound) {
		t.Fatalf("%v", err)
	}
}
