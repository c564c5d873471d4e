package pbzip2

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

// libbz2Server is a Python process that compresses with the system's
// libbzip2 on request (no cgo here): BZ2_bzBuffToBuffCompress(…, 9, 0, 0)
// for Buffer mode, the streaming calls (BZ_RUN, then BZ_FINISH) for
// Stream mode. Requests and replies are a mode byte (requests only) and a
// 4-byte big-endian length, then the bytes.
const libbz2Server = `
import bz2, ctypes, ctypes.util, struct, sys
lib = ctypes.CDLL(ctypes.util.find_library("bz2") or "libbz2.so.1.0")
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    hdr = inp.read(5)
    if len(hdr) < 5:
        break
    n = struct.unpack(">I", hdr[1:])[0]
    data = inp.read(n)
    if hdr[0] == 0:
        cap = n + n // 100 + 600
        buf = ctypes.create_string_buffer(cap)
        ln = ctypes.c_uint(cap)
        r = lib.BZ2_bzBuffToBuffCompress(buf, ctypes.byref(ln), data, ctypes.c_uint(n), 9, 0, 0)
        if r != 0:
            sys.exit("BZ2_bzBuffToBuffCompress returned %d" % r)
        res = buf.raw[:ln.value]
    else:
        c = bz2.BZ2Compressor(9)
        res = c.compress(data) + c.flush()
    out.write(struct.pack(">I", len(res)) + res)
    out.flush()
`

// libbz2 is a running libbz2Server.
type libbz2 struct {
	mu  sync.Mutex
	in  io.WriteCloser
	out *bufio.Reader
	cmd *exec.Cmd
}

var (
	serverOnce sync.Once
	server     *libbz2
	serverErr  error
)

// reference returns what libbzip2 writes for data in mode. For Stream
// mode in the unit tests it is the bzip2 command itself.
func reference(t testing.TB, data []byte, mode Mode) []byte {
	t.Helper()
	if mode == Stream {
		return compressWith(t, "bzip2", []string{"-9", "-c"}, data)
	}
	return viaServer(t, data, mode)
}

func viaServer(t testing.TB, data []byte, mode Mode) []byte {
	t.Helper()
	testutil.RequireTools(t, "python3")
	serverOnce.Do(func() {
		cmd := exec.Command("python3", "-c", libbz2Server)
		in, err := cmd.StdinPipe()
		if err != nil {
			serverErr = err
			return
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			serverErr = err
			return
		}
		cmd.Stderr = os.Stderr
		if serverErr = cmd.Start(); serverErr == nil {
			server = &libbz2{in: in, out: bufio.NewReader(out), cmd: cmd}
		}
	})
	if serverErr != nil {
		t.Fatalf("starting the libbzip2 helper: %v", serverErr)
	}
	server.mu.Lock()
	defer server.mu.Unlock()
	hdr := []byte{0, 0, 0, 0, 0}
	if mode == Stream {
		hdr[0] = 1
	}
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(data)))
	if _, err := server.in.Write(append(hdr, data...)); err != nil {
		t.Fatalf("libbzip2 helper: %v", err)
	}
	var n [4]byte
	if _, err := io.ReadFull(server.out, n[:]); err != nil {
		t.Fatalf("libbzip2 helper: %v", err)
	}
	res := make([]byte, binary.BigEndian.Uint32(n[:]))
	if _, err := io.ReadFull(server.out, res); err != nil {
		t.Fatalf("libbzip2 helper: %v", err)
	}
	return res
}

// checkEncode compares the encoder with libbzip2 in both modes and decodes
// the result with the package's decoder.
func checkEncode(t *testing.T, e *Encoder, name string, data []byte) {
	t.Helper()
	for _, mode := range []Mode{Stream, Buffer} {
		got := e.Encode(nil, data, mode)
		want := reference(t, data, mode)
		if !bytes.Equal(got, want) {
			at := 0
			for at < min(len(got), len(want)) && got[at] == want[at] {
				at++
			}
			t.Errorf("%s (%d bytes), mode %d: %d bytes, libbzip2 %d; first difference at byte %d", name, len(data), mode, len(got), len(want), at)
			continue
		}
		back, err := DecodeOne(got, len(data))
		if err != nil || !bytes.Equal(back, data) {
			t.Errorf("%s, mode %d: decoding gives %d bytes, %v", name, mode, len(back), err)
		}
	}
}

// runInputs checks every input on all cores, an encoder per goroutine.
func runInputs(t *testing.T, in map[string][]byte) {
	t.Helper()
	names := make(chan string)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := NewEncoder()
			for name := range names {
				checkEncode(t, e, name, in[name])
			}
		}()
	}
	for name := range in {
		names <- name
	}
	close(names)
	wg.Wait()
}

func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestEncodeSmall(t *testing.T) {
	testutil.RequireTools(t, "bzip2", "python3")
	in := map[string][]byte{
		"empty":  {},
		"byte":   {'x'},
		"two":    {'x', 'y'},
		"banana": []byte("banana"),
		"text":   []byte("hello hello hello world, hello again"),
	}
	// Runs around the run-length stage's limits (4 and 255), alone and
	// between other bytes.
	for _, l := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 250, 251, 252, 253, 254, 255, 256, 257, 258, 259, 260, 509, 510, 511, 512, 765, 766} {
		run := bytes.Repeat([]byte{'c'}, l)
		in[fmt.Sprintf("run%d", l)] = run
		in[fmt.Sprintf("ab-run%d-de", l)] = append(append([]byte("ab"), run...), "de"...)
		in[fmt.Sprintf("runs%d-of-3", l)] = bytes.Repeat(append(run, 'x', 'x', 'x'), 7)
	}
	// Periodic blocks: equal rotations, where libbzip2's sorting algorithm
	// decides the origin pointer. Short ones go to its fallback sort.
	for p := 1; p <= 64; p++ {
		unit := randomBytes(uint64(p), p)
		in[fmt.Sprintf("period%d", p)] = bytes.Repeat(unit, 3000/p+1)
		in[fmt.Sprintf("period%d-text", p)] = bytes.Repeat([]byte(strings.Repeat("ab", p)[:p]), 2000/p+2)
	}
	runInputs(t, in)
}

func TestEncodeLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("megabytes through libbzip2 and the encoder")
	}
	testutil.RequireTools(t, "bzip2", "python3")
	in := map[string][]byte{
		"one-byte-1MiB": bytes.Repeat([]byte{'z'}, 1<<20),
		"zeros-1MiB":    make([]byte, 1<<20),
		"random-2.5MiB": randomBytes(7, 5<<19),
		"zeros-60MiB":   make([]byte, 60<<20), // 900k-byte blocks of runs
	}
	// Periodic blocks long enough for libbzip2's main sort (and its budget
	// running out into the fallback), and a block a whole number of
	// periods long.
	for _, p := range []int{1, 2, 3, 4, 5, 7, 8, 13, 16, 31, 32, 64, 1000, 1024, 2047, 4096, 9999, 50000} {
		unit := randomBytes(uint64(1000+p), p)
		in[fmt.Sprintf("period%d-60k", p)] = bytes.Repeat(unit, 60000/p+1)
		in[fmt.Sprintf("period%d-1MiB", p)] = bytes.Repeat(unit, (1<<20)/p+1)
		in[fmt.Sprintf("period%d-exact", p)] = bytes.Repeat(unit, nblockMax/p+1)
	}
	// Input sizes around the block limit.
	rnd := randomBytes(9, 900020)
	for n := 899980; n <= 900020; n++ {
		in[fmt.Sprintf("random-%d", n)] = rnd[:n]
	}
	// Text and an ELF binary.
	var src bytes.Buffer
	files, _ := filepath.Glob("../../*/*.go")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		src.Write(b)
	}
	in["go-source"] = src.Bytes()
	if exe, err := exec.LookPath("bzip2"); err == nil {
		in["elf"], _ = os.ReadFile(exe)
	}
	// Every 1 MiB chunk of the test vectors' inputs.
	for _, name := range []string{"usr-old.bin.bz2", "usr-new.bin.bz2"} {
		img := testutil.Unbzip2(t, testutil.Vector(name))
		for off := 0; off < len(img); off += 1 << 20 {
			in[fmt.Sprintf("%s@%d", name, off)] = img[off:min(len(img), off+1<<20)]
		}
	}
	for _, name := range []string{"vmlinuz-old", "vmlinuz-new"} {
		in[name] = testutil.Read(t, testutil.Vector(name))
	}
	runInputs(t, in)
}

// The suffix sort and libbzip2's own sort agree on every block that is not
// periodic (the order is unique there), whichever of libbzip2's sorts runs.
func TestSortsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	lib := newLibSorter()
	var rs rotSorter
	for i := range 300 {
		n := 1 + rng.IntN(30000)
		alpha := 1 + rng.IntN(4)
		if i%10 == 0 {
			alpha = 256
		}
		block := make([]byte, n+overshoot)
		for j := range n {
			block[j] = byte(rng.IntN(alpha))
		}
		bwt := make([]byte, n)
		orig, ok := rs.sort(block[:n], bwt)
		if !ok {
			continue // periodic
		}
		ptr := make([]int32, n)
		lib.sort(block, n, ptr)
		for j, p := range ptr {
			if p == 0 && j != orig {
				t.Fatalf("block %d (%d bytes, alphabet %d): origin %d, libbzip2's sort %d", i, n, alpha, orig, j)
			}
			if block[(int(p)+n-1)%n] != bwt[j] {
				t.Fatalf("block %d (%d bytes, alphabet %d): transforms differ at %d", i, n, alpha, j)
			}
		}
	}
}

func TestLeastRotation(t *testing.T) {
	for _, c := range []struct {
		s        string
		m        int
		periodic bool
	}{
		{"a", 0, false}, {"aa", 0, true}, {"ab", 0, false}, {"ba", 1, false},
		{"abab", 0, true}, {"baba", 1, true}, {"banana", 5, false},
		{"cabcab", 1, true}, {"aab", 0, false}, {"bba", 2, false},
	} {
		m, p := leastRotation([]byte(c.s), make([]byte, 2*len(c.s)))
		if m != c.m || p != c.periodic {
			t.Errorf("%q: %d %v, want %d %v", c.s, m, p, c.m, c.periodic)
		}
	}
}

// FuzzEncode compares the encoder with libbzip2 in both modes, and decodes
// its output with the package's decoder.
func FuzzEncode(f *testing.F) {
	testutil.RequireTools(f, "python3")
	f.Add([]byte{})
	f.Add([]byte("banana"))
	f.Add(bytes.Repeat([]byte{'a'}, 300))
	f.Add(bytes.Repeat([]byte("ab"), 40))
	f.Add(append(bytes.Repeat([]byte{7}, 256), 7, 7, 7, 1))
	e := NewEncoder()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, mode := range []Mode{Buffer, Stream} {
			got := e.Encode(nil, data, mode)
			if want := viaServer(t, data, mode); !bytes.Equal(got, want) {
				t.Fatalf("mode %d: %x, libbzip2 %x", mode, got, want)
			}
			back, err := DecodeOne(got, len(data))
			if err != nil || !bytes.Equal(back, data) {
				t.Fatalf("mode %d: decoding gives %v", mode, err)
			}
		}
	})
}
