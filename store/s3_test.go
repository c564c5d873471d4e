package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/augen-project/augen/internal/testutil"
)

// A file larger than a part goes up in several parts to a real S3 gateway
// and comes back whole.
func TestS3Multipart(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 11 MiB")
	}
	const access, secret = "augenstoreaccess", "augenstoresecret0123456789"
	endpoint := testutil.StartVersityGW(t, t.TempDir(), access, secret)
	env := map[string]string{"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1"}
	ctx := context.Background()
	mc, err := minio.New(endpoint[len("http://"):], &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.MakeBucket(ctx, "bkt", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := Open("s3://bkt/pre/fix", Options{Getenv: func(k string) string { return env[k] }, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.PublicURL(), endpoint+"/bkt/pre/fix/"; got != want {
		t.Fatalf("public URL %s, want %s", got, want)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 11<<20/16)
	var last int64
	if err := s.Put(ctx, "amd64-usr/1.0.0/p.gz", int64(len(data)), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, func(n int64) { last = n }); err != nil {
		t.Fatal(err)
	}
	obj, err := mc.GetObject(ctx, "bkt", "pre/fix/amd64-usr/1.0.0/p.gz", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, obj)
	if err != nil || n != int64(len(data)) || !bytes.Equal(h.Sum(nil), sum(data)) {
		t.Fatalf("read back %d bytes, %v", n, err)
	}
	st, err := mc.StatObject(ctx, "bkt", "pre/fix/amd64-usr/1.0.0/p.gz", minio.StatObjectOptions{})
	if err != nil || !bytes.Contains([]byte(st.ETag), []byte("-3")) {
		t.Fatalf("ETag %q (want a 3-part multipart ETag), %v", st.ETag, err)
	}
	if last != int64(len(data)) {
		t.Fatalf("progress ended at %d", last)
	}
}

func sum(b []byte) []byte { h := sha256.Sum256(b); return h[:] }
