package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3Options configure the S3 engine.
type S3Options struct {
	Bucket   string
	Endpoint string // e.g. http://127.0.0.1:9000; empty for AWS itself
	Region   string // default us-east-1
	// PathStyle addresses buckets as ENDPOINT/BUCKET/KEY rather than
	// BUCKET.ENDPOINT/KEY, which most S3-compatible servers need.
	PathStyle bool
	// AccessKey and SecretKey default to $AWS_ACCESS_KEY_ID and
	// $AWS_SECRET_ACCESS_KEY.
	AccessKey, SecretKey, SessionToken string
}

// S3 keeps objects in an S3 bucket (AWS or any S3-compatible server).
//
// Put spools the body (in memory up to spoolMemory, else to a temporary
// file) before uploading it: the size is then checked before anything is
// sent, the request can be signed over its payload and retried by the SDK,
// and a body of the wrong size never becomes an object. Open reads lazily
// with ranged GETs conditioned on the ETag seen by HEAD, so a Range request
// costs one GET of the bytes it needs and an object replaced meanwhile is
// reported instead of mixed.
type S3 struct {
	client *s3.Client
	bucket string
}

var _ Store = (*S3)(nil)

const spoolMemory = 8 << 20

// OpenS3 connects to the bucket, creating it when it does not exist.
func OpenS3(ctx context.Context, o S3Options) (*S3, error) {
	if o.Bucket == "" {
		return nil, errors.New("blob: S3 URL needs a bucket: s3://BUCKET?endpoint=…")
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.AccessKey == "" {
		o.AccessKey, o.SecretKey, o.SessionToken = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN")
	}
	cfg := aws.Config{Region: o.Region}
	if o.AccessKey != "" {
		cfg.Credentials = credentials.NewStaticCredentialsProvider(o.AccessKey, o.SecretKey, o.SessionToken)
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
		// Checksums only where S3 requires them: S3-compatible servers
		// often do not speak the newer checksum trailers.
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	s := &S3{client: client, bucket: o.Bucket}
	if err := s.Ping(ctx); err != nil {
		if !isNotFound(err) {
			return nil, err
		}
		if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(o.Bucket)}); err != nil {
			return nil, fmt.Errorf("blob: create bucket %s: %w", o.Bucket, err)
		}
	}
	return s, nil
}

func isNotFound(err error) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == 404
}

func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	if size < 0 {
		return Info{}, fmt.Errorf("%w: negative size", ErrSize)
	}
	body, cleanup, err := spool(ctx, &countingReader{r: r, size: size}, size)
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
	}
	defer cleanup()
	in := &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key), Body: body, ContentLength: aws.Int64(size)}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	if _, err := s.client.PutObject(ctx, in); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
	}
	return s.Stat(ctx, key)
}

// spool reads r whole into something the SDK can seek and re-read.
func spool(ctx context.Context, r io.Reader, size int64) (io.ReadSeeker, func(), error) {
	if size <= spoolMemory {
		buf := bytes.NewBuffer(make([]byte, 0, size))
		if _, err := io.Copy(buf, &ctxReader{ctx: ctx, r: r}); err != nil {
			return nil, nil, err
		}
		return bytes.NewReader(buf.Bytes()), func() {}, nil
	}
	f, err := os.CreateTemp("", "scalelab-blob-*")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	if _, err := io.Copy(f, &ctxReader{ctx: ctx, r: r}); err != nil {
		cleanup()
		return nil, nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, nil, err
	}
	return f, cleanup, nil
}

func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		if isNotFound(err) {
			return Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return Info{}, fmt.Errorf("blob: stat %s: %w", key, err)
	}
	info := Info{Key: key, Size: aws.ToInt64(out.ContentLength), ContentType: aws.ToString(out.ContentType), ETag: aws.ToString(out.ETag)}
	if out.LastModified != nil {
		info.ModTime = *out.LastModified
	}
	if info.ETag != "" && !strings.HasPrefix(info.ETag, `"`) {
		info.ETag = `"` + info.ETag + `"`
	}
	return info, nil
}

func (s *S3) Open(ctx context.Context, key string) (Object, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	return &s3Object{s: s, ctx: ctx, info: info}, nil
}

func (s *S3) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("blob: delete %s: %w", key, err)
	}
	return nil
}

// List implements Store (ListObjectsV2, page by page).
func (s *S3) List(ctx context.Context, prefix string, fn func(key string) error) error {
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("blob: list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			if err := fn(aws.ToString(o.Key)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *S3) Ping(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if err != nil {
		return fmt.Errorf("blob: bucket %s: %w", s.bucket, err)
	}
	return nil
}

func (s *S3) Close() error { return nil }

// s3Object reads an object from its current offset with one ranged GET,
// opened on the first Read after a Seek.
type s3Object struct {
	s    *S3
	ctx  context.Context
	info Info
	pos  int64
	body io.ReadCloser
}

func (o *s3Object) Info() Info { return o.info }

func (o *s3Object) Read(p []byte) (int, error) {
	if o.pos >= o.info.Size {
		return 0, io.EOF
	}
	if o.body == nil {
		in := &s3.GetObjectInput{Bucket: aws.String(o.s.bucket), Key: aws.String(o.info.Key),
			Range: aws.String(fmt.Sprintf("bytes=%d-", o.pos))}
		if o.info.ETag != "" {
			in.IfMatch = aws.String(o.info.ETag)
		}
		out, err := o.s.client.GetObject(o.ctx, in)
		if err != nil {
			if isNotFound(err) {
				return 0, fmt.Errorf("%w: %s (deleted while being read)", ErrNotFound, o.info.Key)
			}
			return 0, fmt.Errorf("blob: get %s: %w", o.info.Key, err)
		}
		o.body = out.Body
	}
	n, err := o.body.Read(p)
	o.pos += int64(n)
	if err == io.EOF && o.pos < o.info.Size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (o *s3Object) Seek(offset int64, whence int) (int64, error) {
	var pos int64
	switch whence {
	case io.SeekStart:
		pos = offset
	case io.SeekCurrent:
		pos = o.pos + offset
	case io.SeekEnd:
		pos = o.info.Size + offset
	default:
		return 0, errors.New("blob: bad whence")
	}
	if pos < 0 {
		return 0, errors.New("blob: negative position")
	}
	if pos != o.pos && o.body != nil {
		o.body.Close()
		o.body = nil
	}
	o.pos = pos
	return pos, nil
}

func (o *s3Object) Close() error {
	if o.body != nil {
		return o.body.Close()
	}
	return nil
}
