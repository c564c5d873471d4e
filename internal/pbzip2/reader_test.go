package pbzip2

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

func decodeAll(t testing.TB, b []byte, workers int) ([]byte, error) {
	z := NewReader(bytes.NewReader(b), workers)
	defer z.Close()
	return io.ReadAll(z)
}

func compressWith(t testing.TB, tool string, args []string, data []byte) []byte {
	testutil.RequireTools(t, tool)
	cmd := exec.Command(tool, args...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return out
}

func inputs(t *testing.T) map[string][]byte {
	rng := rand.New(rand.NewChaCha8([32]byte{5}))
	random := make([]byte, 3<<20)
	for i := range random {
		random[i] = byte(rng.IntN(256))
	}
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog 0123456789\n"), 60000)
	mixed := append(append(append([]byte(nil), text[:1<<20]...), make([]byte, 5<<20)...), random[:1<<20]...)
	return map[string][]byte{
		"empty":  {},
		"byte":   {'x'},
		"random": random,
		"text":   text,
		"zeros":  make([]byte, 20<<20), // long runs: tens of MiB per block
		"mixed":  mixed,
		"usr":    testutil.Unbzip2(t, testutil.Vector("usr-new.bin.bz2")),
	}
}

func TestMatchesBzip2(t *testing.T) {
	for name, data := range inputs(t) {
		for _, level := range []string{"-9", "-1"} {
			comp := compressWith(t, "bzip2", []string{level, "-c"}, data)
			workerCounts := []int{1, 2, 5}
			if testutil.Race {
				workerCounts = []int{2}
			}
			for _, workers := range workerCounts {
				got, err := decodeAll(t, comp, workers)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%s %s, %d workers: %v (got %d bytes, want %d)", name, level, workers, err, len(got), len(data))
				}
			}
		}
	}
}

// Concatenated streams, as pbzip2 and lbzip2 -n write them, or as cat
// makes them.
func TestMultiStream(t *testing.T) {
	in := inputs(t)
	a := compressWith(t, "bzip2", []string{"-c"}, in["text"])
	b := compressWith(t, "bzip2", []string{"-c"}, in["mixed"])
	got, err := decodeAll(t, append(append([]byte(nil), a...), b...), 2)
	if err != nil || !bytes.Equal(got, append(append([]byte(nil), in["text"]...), in["mixed"]...)) {
		t.Fatalf("concatenated: %v", err)
	}
	if _, err := exec.LookPath("lbzip2"); err == nil {
		l := compressWith(t, "lbzip2", []string{"-n", "2", "-c"}, in["mixed"])
		got, err := decodeAll(t, l, 2)
		if err != nil || !bytes.Equal(got, in["mixed"]) {
			t.Fatalf("lbzip2: %v", err)
		}
	}
}

func TestErrors(t *testing.T) {
	data := inputs(t)["mixed"]
	comp := compressWith(t, "bzip2", []string{"-c"}, data)
	flip := func(i int) []byte { b := bytes.Clone(comp); b[i] ^= 0x08; return b }
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"truncated", comp[:len(comp)/2], "truncated"},
		{"truncated end", comp[:len(comp)-3], "truncated"},
		{"flipped bit", flip(len(comp) / 3), "block"},
		{"stream CRC", flip(len(comp) - 2), "CRC"},
		{"trailing garbage", append(bytes.Clone(comp), "garbage"...), "after bzip2 stream 1"},
		{"not bzip2", []byte("hello world, not bzip2"), "not a bzip2 stream"},
		{"empty input", nil, "not a bzip2 stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeAll(t, tc.in, 2)
			if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	// The message names the block and where it is.
	_, err := decodeAll(t, flip(len(comp)/3), 2)
	if !strings.Contains(err.Error(), "compressed byte") {
		t.Fatalf("no position in %v", err)
	}
}

func TestScan(t *testing.T) {
	// A block magic at every bit shift is found, and only there.
	for s := uint64(0); s < 8; s++ {
		data := make([]byte, 32)
		v := uint64(blockMagic) << (64 - 48 - s)
		for i := 0; i < 8; i++ {
			data[3+i] |= byte(v >> (56 - 8*i))
		}
		c := scan(data, 0, 32*8)
		if len(c) != 1 || c[0].bit != 24+s || c[0].end {
			t.Fatalf("shift %d: %+v", s, c)
		}
	}
}

func FuzzReader(f *testing.F) {
	f.Add(testutil.Read(f, testutil.Vector("usr-new.bin.bz2"))[:4096])
	f.Add([]byte("BZh91AY&SY"))
	f.Fuzz(func(t *testing.T, b []byte) {
		z := NewReader(bytes.NewReader(b), 2)
		io.Copy(io.Discard, io.LimitReader(z, 64<<20))
		z.Close()
	})
}

func TestDecodeOne(t *testing.T) {
	data := inputs(t)["mixed"]
	one := compressWith(t, "bzip2", []string{"-c"}, data)
	got, err := DecodeOne(one, len(data))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("DecodeOne: %v", err)
	}
	empty := compressWith(t, "bzip2", []string{"-c"}, nil)
	if got, err := DecodeOne(empty, 0); err != nil || len(got) != 0 {
		t.Fatalf("empty stream: %v", err)
	}
	two := append(bytes.Clone(one), empty...)
	for _, tc := range []struct {
		name string
		in   []byte
		max  int
		want string
	}{
		{"two streams", two, len(data), "after the end of the bzip2 stream"},
		{"trailing byte", append(bytes.Clone(one), 0), len(data), "after the end"},
		{"too large", one, len(data) - 1, "more than the"},
		{"truncated", one[:len(one)-2], len(data), "truncated"},
		{"not bzip2", []byte("nope"), 10, "no BZh header"},
	} {
		if _, err := DecodeOne(tc.in, tc.max); err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func FuzzDecodeOne(f *testing.F) {
	f.Add(compressWith(f, "bzip2", []string{"-c"}, []byte("hello hello hello")))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := DecodeOne(b, 1<<16)
		if err == nil && len(out) > 1<<16 {
			t.Fatal("limit exceeded")
		}
		// The streaming form emits the same bytes and fails the same way.
		var got []byte
		n, err2 := DecodeOneTo(b, 1<<16, func(p []byte) error { got = append(got, p...); return nil })
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() || n != len(got) || err == nil && !bytes.Equal(got, out) {
			t.Fatalf("DecodeOneTo: %d bytes, %v; DecodeOne: %d bytes, %v", len(got), err2, len(out), err)
		}
	})
}
