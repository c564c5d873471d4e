package store

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func opener(s string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
}

func TestOpenRefusals(t *testing.T) {
	for _, u := range []string{"https://user:pass@example.com/x", "ftp://x/y", "file://host/dir", "s3:///prefix", "file:///does/not/exist"} {
		if _, err := Open(u, Options{}); err == nil {
			t.Errorf("%s accepted", u)
		} else if strings.Contains(err.Error(), "pass") && !strings.Contains(err.Error(), "PASSWORD") {
			t.Errorf("%s: the password is in the error: %v", u, err)
		}
	}
}

func TestDirStore(t *testing.T) {
	dir := t.TempDir()
	s, err := Open("file://"+dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, key := range []string{"../x", "/abs", "a/../../x", ""} {
		if err := s.Put(ctx, key, 1, opener("x"), nil); err == nil {
			t.Errorf("key %q accepted", key)
		}
	}
	// A short read leaves nothing behind.
	if err := s.Put(ctx, "amd64-usr/1.0.0/p.gz", 5, opener("abc"), nil); err == nil {
		t.Fatal("short read accepted")
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "amd64-usr/1.0.0")); len(ents) != 0 {
		t.Fatalf("a failed upload left %d file(s)", len(ents))
	}
	var seen int64
	if err := s.Put(ctx, "amd64-usr/1.0.0/p.gz", 3, opener("abc"), func(n int64) { seen = n }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "amd64-usr/1.0.0/p.gz")); string(b) != "abc" || seen != 3 {
		t.Fatalf("%q, progress %d", b, seen)
	}
}

// PUT is retried after a 5xx with a fresh reader; a 405 says what nginx
// needs.
func TestHTTPStore(t *testing.T) {
	var tries int
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tries++
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/nodav/x" {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		if tries == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		got = r.URL.Path + ":" + string(b)
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	s, err := Open(srv.URL+"/pkgs", Options{})
	if err != nil {
		t.Fatal(err)
	}
	hs := s.(*httpStore)
	if err := hs.Put(context.Background(), "a/b.gz", 3, opener("abc"), nil); err != nil {
		t.Fatal(err)
	}
	if tries != 2 || got != "/pkgs/a/b.gz:abc" {
		t.Fatalf("%d tries, got %q", tries, got)
	}
	s2, _ := Open(srv.URL+"/nodav/", Options{})
	if err := s2.Put(context.Background(), "x", 3, opener("abc"), nil); err == nil || !strings.Contains(err.Error(), "dav_methods PUT") {
		t.Fatalf("405: %v", err)
	}
}

// Fetch hashes what is served and never reads past its limit.
func TestFetch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(strings.Repeat("x", 1000))) }))
	defer srv.Close()
	d, status, err := Fetch(context.Background(), http.DefaultClient, srv.URL, 11)
	if err != nil || status != 200 || d.Size != 11 {
		t.Fatalf("%+v %d %v", d, status, err)
	}
	if _, _, err := Fetch(context.Background(), http.DefaultClient, "http://127.0.0.1:1/x", 1); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("refused connection: %v", err)
	}
}

// A redirected upload fails at once: the credentials and the body never
// reach another port, scheme or host, and the refusal is not retried.
func TestHTTPStoreRedirect(t *testing.T) {
	var elsewhere []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere = append(elsewhere, r.Method+" auth="+r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusCreated)
	}))
	defer other.Close()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		tries := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tries++
			io.Copy(io.Discard, r.Body)
			// Same host, another port: net/http would resend the
			// basic-auth header there.
			http.Redirect(w, r, other.URL+r.URL.Path, code)
		}))
		env := map[string]string{"AUGEN_STORE_USER": "uploader", "AUGEN_STORE_PASSWORD": "s3cret"}
		s, err := Open(srv.URL+"/pkgs/", Options{Getenv: func(k string) string { return env[k] }})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Put(context.Background(), "a/b.gz", 3, opener("abc"), nil)
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), "not redirected") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("HTTP %d: %v", code, err)
		}
		if tries != 1 {
			t.Errorf("HTTP %d: %d tries, want 1 (a refused redirect is not retried)", code, tries)
		}
	}
	if len(elsewhere) != 0 {
		t.Fatalf("requests reached the redirect target: %v", elsewhere)
	}
}
