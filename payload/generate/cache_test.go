package generate

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"

	"github.com/augen-project/augen/internal/pbzip2"
)

// The blob cache gives exactly the blobs compressing without it gives, for
// chunks that repeat (zeros, a short pattern, a short last chunk) and one
// that does not compress (kept raw as REPLACE), and keeps only small blobs.
func TestBlobCache(t *testing.T) {
	zeros := make([]byte, ChunkSize)
	pattern := bytes.Repeat([]byte("augen blob cache "), ChunkSize/17+1)[:ChunkSize]
	random := make([]byte, ChunkSize)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	short := []byte("a short last chunk")
	chunks := [][]byte{zeros, pattern, random, zeros, short, pattern, zeros, random, short}

	w := &worker{enc: pbzip2.NewEncoder()}
	var c blobCache
	c.init()
	for i, raw := range chunks {
		got := &job{raw: raw, n: len(raw)}
		w.compress(got, &c)
		want := &job{raw: raw, n: len(raw)}
		w.compress(want, nil)
		if got.typ != want.typ || got.sum != want.sum || !bytes.Equal(got.blob, want.blob) {
			t.Fatalf("chunk %d: with the cache %v %x (%d bytes), without %v %x (%d bytes)",
				i, got.typ, got.sum[:4], len(got.blob), want.typ, want.sum[:4], len(want.blob))
		}
		if want.sum != sha256.Sum256(want.blob) {
			t.Fatalf("chunk %d: sum is not the blob's SHA-256", i)
		}
	}
	// The blobs of zeros, the pattern and the short chunk (REPLACE, 18
	// bytes) are small and kept; the random chunk's (REPLACE, 1 MiB) is not.
	if len(c.m) != 3 {
		t.Fatalf("%d blobs kept, want 3", len(c.m))
	}
	if _, ok := c.get(sha256.Sum256(zeros)); !ok {
		t.Fatal("zeros not found in the cache")
	}
	if _, ok := c.get(sha256.Sum256(random)); ok {
		t.Fatal("a 1 MiB blob was kept")
	}
}

// chunkKey is the chunk's SHA-256, whether or not the chunk is a whole
// chunk of zeros (which it recognises without hashing).
func TestChunkKey(t *testing.T) {
	zeros := make([]byte, ChunkSize)
	last := make([]byte, ChunkSize)
	last[ChunkSize-1] = 1
	for _, raw := range [][]byte{zeros, last, zeros[:ChunkSize-1], zeros[:4096], nil} {
		if chunkKey(raw) != sha256.Sum256(raw) {
			t.Fatalf("%d bytes: the key is not the SHA-256", len(raw))
		}
	}
}

func BenchmarkChunkKeyZeros(b *testing.B) {
	zeros := make([]byte, ChunkSize)
	b.SetBytes(ChunkSize)
	b.Run("compare", func(b *testing.B) {
		for b.Loop() {
			chunkKey(zeros)
		}
	})
	b.Run("sha256", func(b *testing.B) {
		for b.Loop() {
			sha256.Sum256(zeros)
		}
	})
}
