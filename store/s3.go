package store

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3Store uploads to an S3-compatible object store (AWS S3, Cloudflare R2,
// GCS interoperability, MinIO, versitygw) with minio-go, which does the
// multipart upload and its retries.
type s3Store struct {
	client   *minio.Client
	endpoint *url.URL
	bucket   string
	prefix   string
	partSize uint64
}

// openS3 reads the endpoint from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL
// (AWS S3 itself when neither is set), the region from AWS_REGION or
// AWS_DEFAULT_REGION, and credentials from the usual places: the
// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY(/AWS_SESSION_TOKEN) environment,
// else the shared credentials file (AWS_SHARED_CREDENTIALS_FILE,
// AWS_PROFILE), MinIO's environment, an instance role.
func openS3(u *url.URL, opts Options) (Store, error) {
	bucket := u.Host
	if bucket == "" {
		return nil, fmt.Errorf("store %q: want s3://BUCKET/PREFIX", u.String())
	}
	ep := firstSet(opts.Getenv, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	if ep == "" {
		ep = "https://s3.amazonaws.com"
	}
	epu, err := url.Parse(ep)
	if err != nil || (epu.Scheme != "http" && epu.Scheme != "https") || epu.Host == "" {
		return nil, fmt.Errorf("S3 endpoint %q: want an http(s) URL", ep)
	}
	tr, err := transport(opts.CAFile)
	if err != nil {
		return nil, err
	}
	var creds *credentials.Credentials
	if id := firstSet(opts.Getenv, "AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"); id != "" {
		creds = credentials.NewStaticV4(id, firstSet(opts.Getenv, "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"), opts.Getenv("AWS_SESSION_TOKEN"))
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.FileAWSCredentials{Filename: opts.Getenv("AWS_SHARED_CREDENTIALS_FILE"), Profile: opts.Getenv("AWS_PROFILE")},
			&credentials.EnvMinio{},
			&credentials.IAM{},
		})
	}
	// Without credentials minio-go would go on anonymously and fail later
	// with a puzzling message.
	if v, err := creds.GetWithContext(nil); err != nil || v.AccessKeyID == "" {
		return nil, fmt.Errorf("S3: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_SHARED_CREDENTIALS_FILE/AWS_PROFILE")
	}
	client, err := minio.New(epu.Host, &minio.Options{
		Creds:        creds,
		Secure:       epu.Scheme == "https",
		Region:       firstSet(opts.Getenv, "AWS_REGION", "AWS_DEFAULT_REGION"),
		Transport:    tr,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   opts.Retries + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("S3: %w", err)
	}
	part := opts.PartSize
	if part == 0 {
		part = 16 << 20 // bounded memory: parts are buffered, two at a time
	}
	return &s3Store{client: client, endpoint: epu, bucket: bucket, prefix: strings.Trim(u.Path, "/"), partSize: part}, nil
}

func firstSet(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := getenv(n); v != "" {
			return v
		}
	}
	return ""
}

func (s *s3Store) String() string { return "s3://" + path.Join(s.bucket, s.prefix) }

// PublicURL is the path-style object URL on the endpoint; a bucket served
// elsewhere (a CDN, an R2 public domain) needs --public-url.
func (s *s3Store) PublicURL() string {
	u := *s.endpoint
	u.Path = "/" + path.Join(s.bucket, s.prefix) + "/"
	return u.String()
}

func (s *s3Store) Put(ctx context.Context, key string, size int64, open func() (io.ReadCloser, error), progress func(int64)) error {
	key, err := cleanKey(key)
	if err != nil {
		return err
	}
	r, err := open()
	if err != nil {
		return err
	}
	defer r.Close()
	obj := path.Join(s.prefix, key)
	_, err = s.client.PutObject(ctx, s.bucket, obj, &progressReader{ctx: ctx, r: r, fn: progress}, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    s.partSize,
		NumThreads:  2,
	})
	if err != nil {
		return fmt.Errorf("store: S3 PUT s3://%s/%s: %w", s.bucket, obj, err)
	}
	return nil
}
