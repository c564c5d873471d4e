package ctxio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// endless yields zeros forever and counts what it gave.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) { clear(p); e.n += int64(len(p)); return len(p), nil }

func TestCopyStopsWhenCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	src := &endless{}
	w := writerFunc(func(p []byte) (int, error) {
		if src.n > 64<<20 {
			cancel()
		}
		return len(p), nil
	})
	_, err := Copy(ctx, w, src)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Copy = %v, want context.Canceled", err)
	}
	// One more buffer at most is read after the cancel.
	if src.n > 64<<20+8<<20 {
		t.Fatalf("read %d bytes after the cancel", src.n)
	}
}

func TestReaderPassesThrough(t *testing.T) {
	var out bytes.Buffer
	if _, err := Copy(context.Background(), &out, bytes.NewReader([]byte("abc"))); err != nil || out.String() != "abc" {
		t.Fatalf("Copy = %q, %v", out.String(), err)
	}
	if r := Reader(context.Background(), io.LimitReader(nil, 0)); r == nil {
		t.Fatal("nil reader")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
