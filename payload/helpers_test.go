package payload_test

import (
	"bytes"
	"context"
	"crypto"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/generate"
	"github.com/augen-project/augen/pubkey"
)

const vectors = "../testdata/vectors/"

func readFile(t testing.TB, p string) []byte { return testutil.Read(t, p) }

// testKey loads a TEST-ONLY private key from the vectors.
func testKey(t testing.TB, name string) crypto.Signer { return testutil.Key(t, name) }

func testPub(t testing.TB, name string) crypto.PublicKey {
	t.Helper()
	k, err := pubkey.Load(vectors + "TEST-ONLY-key-" + name + ".pub.pem")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// tinyPayload builds a small signed payload: a 3-block image (one block
// compressible, one random, one short pattern) and a 100-byte kernel.
func tinyPayload(t testing.TB, keys ...crypto.Signer) []byte {
	t.Helper()
	img := make([]byte, 3*payload.BlockSize)
	for i := range img[:payload.BlockSize] {
		img[i] = 0xFF
	}
	x := uint32(1)
	for i := payload.BlockSize; i < 2*payload.BlockSize; i++ {
		x = x*1664525 + 1013904223
		img[i] = byte(x >> 24)
	}
	copy(img[2*payload.BlockSize:], "augen test image")
	kernel := bytes.Repeat([]byte("kernel"), 17)[:100]
	return buildPayload(t, img, kernel, keys...)
}

func buildPayload(t testing.TB, img, kernel []byte, keys ...crypto.Signer) []byte {
	t.Helper()
	opts := generate.BuildOptions{}
	opts.Image = generate.Input{R: bytes.NewReader(img), Size: int64(len(img))}
	if kernel != nil {
		opts.Kernel = generate.Input{R: bytes.NewReader(kernel), Size: int64(len(kernel))}
	}
	for _, k := range keys {
		n, err := payload.SignatureSize(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		opts.SignatureSizes = append(opts.SignatureSizes, n)
	}
	if len(keys) > 0 {
		opts.Sign = payload.SignWith(keys)
	}
	var out bytes.Buffer
	if _, err := generate.BuildFull(context.Background(), &out, opts); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// verifyBytes runs every check short of applying: the reader's rules, and
// the signatures against pubs.
func verifyBytes(b []byte, pubs ...crypto.PublicKey) (*payload.Summary, error) {
	s, err := payload.Check(bytes.NewReader(b), pubs)
	if err != nil {
		return nil, err
	}
	return s, s.CheckSignature()
}
