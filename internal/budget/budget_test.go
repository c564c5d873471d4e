package budget

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func TestBudget(t *testing.T) {
	r := NewReaderAt(context.Background(), bytes.NewReader(make([]byte, 100)), 50)
	buf := make([]byte, 30)
	if _, err := r.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(buf, 0); !errors.Is(err, ErrExceeded) {
		t.Fatalf("second read = %v, want ErrExceeded", err)
	}
	if r.Used() != 60 {
		t.Errorf("Used = %d", r.Used())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewReaderAt(ctx, bytes.NewReader(nil), 10).ReadAt(buf[:1], 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled read = %v", err)
	}
}
