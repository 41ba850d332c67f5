package blob

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Local keeps each object in one file under a directory. The file holds
// the content, then a small JSON trailer (content type, ETag, size), then
// the trailer's length in 8 bytes: the ETag is a hash of the content, known
// only once it has streamed through, and a trailer lets Put write in one
// pass. Put writes a temporary file, fsyncs it, renames it into place and
// fsyncs the directory, so an object appears whole or not at all, and a
// crash never leaves half an image under a key.
type Local struct {
	dir string
}

var _ Store = (*Local)(nil)

type localTrailer struct {
	ContentType string `json:"contentType"`
	ETag        string `json:"etag"`
	Size        int64  `json:"size"`
}

const maxTrailer = 4096

// staleTemp is how old a temporary file of an unfinished Put must be for
// NewLocal to remove it: a Put in progress in another process that shares
// the directory is far younger.
const staleTemp = time.Hour

// NewLocal opens (and creates) a local store in dir. Temporary files left
// by a process that died in the middle of a Put are removed.
func NewLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(filepath.Join(dir, ".tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("blob: create %s: %w", dir, err)
	}
	l := &Local{dir: dir}
	_, _ = l.SweepTemp(time.Now().Add(-staleTemp))
	return l, nil
}

// SweepTemp removes the temporary files of Puts that never finished (their
// process died mid-write) last written before cutoff, and returns how many
// it removed. A caller that runs it periodically picks a cutoff older than
// its longest Put, so it never takes a file from a Put still in progress.
func (l *Local) SweepTemp(cutoff time.Time) (int, error) {
	tmpDir := filepath.Join(l.dir, ".tmp")
	entries, err := os.ReadDir(tmpDir)
	if err != nil {
		return 0, fmt.Errorf("blob: read %s: %w", tmpDir, err)
	}
	removed := 0
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			if os.Remove(filepath.Join(tmpDir, e.Name())) == nil {
				removed++
			}
		}
	}
	return removed, nil
}

// List implements Store.
func (l *Local) List(ctx context.Context, prefix string, fn func(key string) error) error {
	root := l.path(strings.TrimSuffix(prefix, "/"))
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(l.dir, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if CheckKey(key) != nil {
			return nil // not an object of this store
		}
		return fn(key)
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: list %s: %w", prefix, err)
	}
	return nil
}

func (l *Local) path(key string) string { return filepath.Join(l.dir, filepath.FromSlash(key)) }

func (l *Local) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	if size < 0 {
		return Info{}, fmt.Errorf("%w: negative size", ErrSize)
	}
	tmp, err := os.CreateTemp(filepath.Join(l.dir, ".tmp"), "put-*")
	if err != nil {
		return Info{}, fmt.Errorf("blob: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // a no-op once renamed
	defer tmp.Close()

	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), &ctxReader{ctx: ctx, r: &countingReader{r: r, size: size}}); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
	}
	t := localTrailer{ContentType: contentType, ETag: `"` + hex.EncodeToString(h.Sum(nil)) + `"`, Size: size}
	trailer, _ := json.Marshal(t)
	if len(trailer) > maxTrailer {
		return Info{}, fmt.Errorf("blob: put %s: content type too long", key)
	}
	trailer = binary.BigEndian.AppendUint64(trailer, uint64(len(trailer)))
	if _, err := tmp.Write(trailer); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: sync: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
	}
	dst := l.path(key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
	}
	return l.Stat(ctx, key)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (l *Local) Open(ctx context.Context, key string) (Object, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(l.path(key))
	if err != nil {
		return nil, notFound(key, err)
	}
	info, err := readInfo(f, key)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &localObject{SectionReader: io.NewSectionReader(f, 0, info.Size), f: f, info: info}, nil
}

func (l *Local) Stat(ctx context.Context, key string) (Info, error) {
	obj, err := l.Open(ctx, key)
	if err != nil {
		return Info{}, err
	}
	defer obj.Close()
	return obj.Info(), nil
}

func (l *Local) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if err := os.Remove(l.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: delete %s: %w", key, err)
	}
	return nil
}

func (l *Local) Ping(ctx context.Context) error {
	_, err := os.Stat(l.dir)
	return err
}

func (l *Local) Close() error { return nil }

func notFound(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) || errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return fmt.Errorf("blob: %s: %w", key, err)
}

// readInfo reads the trailer at the end of an object file.
func readInfo(f *os.File, key string) (Info, error) {
	st, err := f.Stat()
	if err != nil {
		return Info{}, fmt.Errorf("blob: %s: %w", key, err)
	}
	if st.IsDir() {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	var n [8]byte
	if st.Size() < 8 {
		return Info{}, fmt.Errorf("blob: %s: file too short to be an object", key)
	}
	if _, err := f.ReadAt(n[:], st.Size()-8); err != nil {
		return Info{}, fmt.Errorf("blob: %s: %w", key, err)
	}
	tlen := int64(binary.BigEndian.Uint64(n[:]))
	if tlen <= 0 || tlen > maxTrailer || tlen > st.Size()-8 {
		return Info{}, fmt.Errorf("blob: %s: corrupt trailer", key)
	}
	buf := make([]byte, tlen)
	if _, err := f.ReadAt(buf, st.Size()-8-tlen); err != nil {
		return Info{}, fmt.Errorf("blob: %s: %w", key, err)
	}
	var t localTrailer
	if err := json.Unmarshal(buf, &t); err != nil || t.Size != st.Size()-8-tlen {
		return Info{}, fmt.Errorf("blob: %s: corrupt trailer", key)
	}
	return Info{Key: key, Size: t.Size, ContentType: t.ContentType, ETag: t.ETag, ModTime: st.ModTime()}, nil
}

type localObject struct {
	*io.SectionReader
	f    *os.File
	info Info
}

func (o *localObject) Info() Info   { return o.info }
func (o *localObject) Close() error { return o.f.Close() }

// ctxReader stops a copy when ctx ends (a client gone mid-upload).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
