package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Errors every engine returns, checked with errors.Is.
var (
	ErrNotFound   = errors.New("blob: not found")
	ErrInvalidKey = errors.New("blob: invalid key")
	ErrSize       = errors.New("blob: size does not match the declared size")
)

// Info describes a stored object.
type Info struct {
	Key         string
	Size        int64
	ContentType string
	// ETag is a strong validator of the content (hex SHA-256 locally, the
	// S3 ETag on S3), quoted as HTTP wants it.
	ETag    string
	ModTime time.Time
}

// Object is an opened object: its Info and a reader that can seek, so that
// http.ServeContent can answer Range requests from it.
type Object interface {
	io.ReadSeekCloser
	Info() Info
}

// Store is a blob store: whole objects written once under a key and read
// back, whole or by range.
type Store interface {
	// Put stores size bytes from r under key. The object becomes visible
	// all at once when Put returns nil; a failed Put leaves any previous
	// object under key as it was. r must yield exactly size bytes (ErrSize).
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Info, error)
	// Open returns the object under key, or ErrNotFound.
	Open(ctx context.Context, key string) (Object, error)
	// Stat returns the object's Info, or ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn with the key of every object under prefix (a
	// directory-like prefix ending in "/"), in no promised order, until fn
	// returns an error (which List returns). For garbage collection.
	List(ctx context.Context, prefix string, fn func(key string) error) error
	// Ping checks that the store answers (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}

// Open returns the store named by rawURL:
//
//	"" or file://DIR       a local directory (default DATA/blobs)
//	s3://BUCKET?endpoint=http://host:port&region=us-east-1&path_style=true
//
// S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
// (and AWS_SESSION_TOKEN); the bucket is created if it does not exist.
func Open(ctx context.Context, rawURL, dataDir string) (Store, error) {
	switch {
	case rawURL == "":
		return NewLocal(filepath.Join(dataDir, "blobs"))
	case strings.HasPrefix(rawURL, "file://"):
		return NewLocal(strings.TrimPrefix(rawURL, "file://"))
	case strings.HasPrefix(rawURL, "s3://"):
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("blob: bad S3 URL: %w", err)
		}
		q := u.Query()
		return OpenS3(ctx, S3Options{
			Bucket:    u.Host,
			Endpoint:  q.Get("endpoint"),
			Region:    q.Get("region"),
			PathStyle: q.Get("path_style") != "false",
		})
	}
	return nil, fmt.Errorf("blob: unsupported blob URL %q: want file://DIR or s3://BUCKET?endpoint=…", rawURL)
}

// MaxKey is the longest key accepted.
const MaxKey = 512

// CheckKey accepts keys made of path segments of letters, digits and
// "._-", separated by "/": safe as a file path and as an S3 key alike.
func CheckKey(key string) error {
	if key == "" || len(key) > MaxKey {
		return fmt.Errorf("%w: %q: 1–%d characters", ErrInvalidKey, key, MaxKey)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, ".") {
			return fmt.Errorf("%w: %q: empty, dot or dot-dot path segment", ErrInvalidKey, key)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("%w: %q: only letters, digits, '.', '_', '-' and '/'", ErrInvalidKey, key)
			}
		}
	}
	return nil
}

// countingReader fails with ErrSize when r yields more or fewer than size
// bytes, so a short or long body never becomes an object.
type countingReader struct {
	r    io.Reader
	size int64
	n    int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= c.size {
		// Look for one byte too many, then report EOF.
		var one [1]byte
		k, err := c.r.Read(one[:])
		if k > 0 {
			return 0, fmt.Errorf("%w: more than %d bytes", ErrSize, c.size)
		}
		if err == nil {
			return 0, nil
		}
		return 0, err
	}
	if rest := c.size - c.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	k, err := c.r.Read(p)
	c.n += int64(k)
	if err == io.EOF && c.n < c.size {
		return k, fmt.Errorf("%w: %d bytes, declared %d", ErrSize, c.n, c.size)
	}
	return k, err
}
