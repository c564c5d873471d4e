package pbzip2

import (
	"bytes"
	"errors"
	"testing"
)

// DecodeOneTo emits, block by block, exactly what DecodeOne returns, and
// fails where it fails.
func TestDecodeOneToMatchesDecodeOne(t *testing.T) {
	big := make([]byte, 1<<20+1<<18) // two blocks of half-compressible bytes
	x := uint32(1)
	for i := range big {
		x = x*1664525 + 1013904223
		big[i] = byte(x>>28) + 'a'
	}
	whole := Compress(big, Buffer)
	for _, tc := range []struct {
		name string
		blob []byte
		max  int
	}{
		{"one block", Compress([]byte("hello, world"), Buffer), 100},
		{"several blocks", whole, len(big)},
		{"too large", whole, len(big) - 1},
		{"trailing byte", append(append([]byte{}, whole...), 0), len(big)},
		{"truncated", whole[:len(whole)/2], len(big)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, wantErr := DecodeOne(tc.blob, tc.max)
			var got bytes.Buffer
			blocks := 0
			n, err := DecodeOneTo(tc.blob, tc.max, func(b []byte) error { blocks++; got.Write(b); return nil })
			if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
				t.Fatalf("error %v, DecodeOne's %v", err, wantErr)
			}
			if n != got.Len() {
				t.Fatalf("returned %d, emitted %d", n, got.Len())
			}
			if err == nil && !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("emitted %d bytes, DecodeOne returned %d", got.Len(), len(want))
			}
			if tc.name == "several blocks" && blocks < 2 {
				t.Fatalf("%d emits for a stream of several blocks", blocks)
			}
		})
	}
	stop := errors.New("stop")
	if _, err := DecodeOneTo(whole, len(big), func([]byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("emit's error: got %v", err)
	}
}
