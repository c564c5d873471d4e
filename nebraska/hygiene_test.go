package nebraska

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Finding 8: a password in --server is refused, and the error shows it
// redacted.
func TestServerURLWithCredentials(t *testing.T) {
	_, err := New("https://admin:s3cret@nebraska.example/", Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("New = %v", err)
	}
}

// Finding 8: the bearer token followed a redirect to another scheme or
// port of the same host. Redirects leave the server only to be refused,
// and the other end never sees the token.
func TestTokenNotSentAcrossRedirect(t *testing.T) {
	var leaked []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = append(leaked, r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c, err := New(srv.URL, Options{Token: "tok-123", Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.App(context.Background(), FlatcarAppID)
	if err == nil || !strings.Contains(err.Error(), "not followed") {
		t.Fatalf("App = %v", err)
	}
	if len(leaked) != 0 {
		t.Fatalf("the other server got %q", leaked)
	}
}
