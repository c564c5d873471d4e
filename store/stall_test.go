package store

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Finding 8: Fetch had no timeout. A server that answers and then sends
// nothing more is given up on after StallTimeout without a byte.
func TestFetchStall(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("some"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	old := StallTimeout
	StallTimeout = 200 * time.Millisecond
	defer func() { StallTimeout = old }()
	_, _, err := Fetch(context.Background(), http.DefaultClient, srv.URL+"/f", 1<<20)
	if err == nil || !strings.Contains(err.Error(), "no data for") {
		t.Fatalf("Fetch = %v", err)
	}
}
