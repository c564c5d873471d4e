package bz

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	dsbzip2 "github.com/dsnet/compress/bzip2"
)

func compress(t testing.TB, b []byte) []byte {
	var out bytes.Buffer
	zw, err := dsbzip2.NewWriter(&out, &dsbzip2.WriterConfig{Level: 9})
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func TestDecodeOne(t *testing.T) {
	data := bytes.Repeat([]byte("flatcar "), 1000)
	one := compress(t, data)
	got, err := DecodeOne(one, int64(len(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("DecodeOne: %v", err)
	}
	for _, tc := range []struct {
		name string
		blob []byte
		max  int64
		want string
	}{
		{"two streams", append(bytes.Clone(one), compress(t, []byte("x"))...), 1 << 20, "more than one stream"},
		{"trailing garbage", append(bytes.Clone(one), "junk"...), 1 << 20, "bzip2"},
		{"too large", one, int64(len(data)) - 1, "more than the"},
		{"not bzip2", []byte("hello world"), 100, "not a bzip2 stream"},
		{"truncated", one[:len(one)-3], 1 << 20, "bzip2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeOne(tc.blob, tc.max)
			if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzDecodeOne(f *testing.F) {
	f.Add(compress(f, []byte("hello hello hello")))
	f.Add(append(compress(f, []byte("a")), compress(f, []byte("b"))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := DecodeOne(b, 1<<16)
		if err == nil && len(out) > 1<<16 {
			t.Fatal("limit exceeded")
		}
	})
}
