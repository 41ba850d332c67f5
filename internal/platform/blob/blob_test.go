package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// engines builds each Store for the contract: a local directory, and the
// S3 adapter against a real S3-protocol server (gofakes3) listening on
// loopback in the test.
var engines = []struct {
	name string
	open func(t *testing.T) Store
}{
	{"Local", func(t *testing.T) Store {
		s, err := Open(context.Background(), "file://"+t.TempDir(), "")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"S3", func(t *testing.T) Store {
		srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
		t.Cleanup(srv.Close)
		t.Setenv("AWS_ACCESS_KEY_ID", "test")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
		s, err := Open(context.Background(), "s3://albums-test?endpoint="+srv.URL, "")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

func TestContract(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Run("PutOpenStat", func(t *testing.T) { testPutOpenStat(t, e.open(t)) })
			t.Run("Ranges", func(t *testing.T) { testRanges(t, e.open(t)) })
			t.Run("WrongSize", func(t *testing.T) { testWrongSize(t, e.open(t)) })
			t.Run("NotFoundAndDelete", func(t *testing.T) { testNotFoundAndDelete(t, e.open(t)) })
			t.Run("InvalidKeys", func(t *testing.T) { testInvalidKeys(t, e.open(t)) })
			t.Run("ConcurrentOverwrites", func(t *testing.T) { testConcurrentOverwrites(t, e.open(t)) })
			t.Run("ServeContent", func(t *testing.T) { testServeContent(t, e.open(t)) })
			t.Run("List", func(t *testing.T) { testList(t, e.open(t)) })
		})
	}
}

func testList(t *testing.T, s Store) {
	for _, k := range []string{"albums/1", "albums/2", "albums/sub/3", "other/4"} {
		mustPut(t, s, k, []byte(k), "text/plain")
	}
	var got []string
	if err := s.List(context.Background(), "albums/", func(key string) error { got = append(got, key); return nil }); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != "albums/1,albums/2,albums/sub/3" {
		t.Fatalf("List(albums/) = %v", got)
	}
	if err := s.List(context.Background(), "none/", func(string) error { t.Fatal("called for an empty prefix"); return nil }); err != nil {
		t.Fatalf("an empty prefix: %v", err)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.List(context.Background(), "albums/", func(string) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("fn's error: %v after %d calls", err, n)
	}
}

// A temporary file left by a process that died mid-Put is removed when the
// store is next opened (a fresh one is not: another process may be writing).
func TestLocalRemovesStaleTempFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewLocal(dir); err != nil {
		t.Fatal(err)
	}
	stale, fresh := filepath.Join(dir, ".tmp", "put-stale"), filepath.Join(dir, ".tmp", "put-fresh")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("half an image"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTemp)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLocal(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stale temp file is still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("the fresh temp file was removed: %v", err)
	}
}

func mustPut(t *testing.T, s Store, key string, data []byte, ct string) Info {
	t.Helper()
	info, err := s.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), ct)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return info
}

func readAll(t *testing.T, s Store, key string) []byte {
	t.Helper()
	obj, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("open %s: %v", key, err)
	}
	defer obj.Close()
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}

func testPutOpenStat(t *testing.T, s Store) {
	data := bytes.Repeat([]byte("0123456789"), 10_000)
	info := mustPut(t, s, "albums/1/cover.jpg", data, "image/jpeg")
	if info.Size != int64(len(data)) || info.ContentType != "image/jpeg" || !strings.HasPrefix(info.ETag, `"`) || info.ModTime.IsZero() {
		t.Fatalf("info %+v", info)
	}
	if got := readAll(t, s, "albums/1/cover.jpg"); !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, want %d", len(got), len(data))
	}
	st, err := s.Stat(context.Background(), "albums/1/cover.jpg")
	if err != nil || st.ETag != info.ETag || st.Size != info.Size {
		t.Fatalf("stat %+v %v, put said %+v", st, err, info)
	}
	// Empty objects exist too.
	if info := mustPut(t, s, "empty", nil, ""); info.Size != 0 {
		t.Fatalf("empty: %+v", info)
	}
	if got := readAll(t, s, "empty"); len(got) != 0 {
		t.Fatalf("empty read %q", got)
	}
	// A new version has a new ETag and replaces the old content whole.
	info2 := mustPut(t, s, "albums/1/cover.jpg", []byte("short"), "image/png")
	if info2.ETag == info.ETag || info2.Size != 5 || info2.ContentType != "image/png" {
		t.Fatalf("overwrite info %+v", info2)
	}
	if got := readAll(t, s, "albums/1/cover.jpg"); string(got) != "short" {
		t.Fatalf("after overwrite %q", got)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func testRanges(t *testing.T, s Store) {
	data := []byte("abcdefghijklmnopqrstuvwxyz")
	mustPut(t, s, "r", data, "text/plain")
	obj, err := s.Open(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	for _, c := range []struct {
		off, whence int64
		n           int
		want        string
	}{{3, io.SeekStart, 4, "defg"}, {2, io.SeekCurrent, 3, "jkl"}, {-2, io.SeekEnd, 2, "yz"}, {0, io.SeekStart, 1, "a"}} {
		if _, err := obj.Seek(c.off, int(c.whence)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, c.n)
		if _, err := io.ReadFull(obj, buf); err != nil || string(buf) != c.want {
			t.Fatalf("seek %d/%d read %q %v, want %q", c.off, c.whence, buf, err, c.want)
		}
	}
	if end, _ := obj.Seek(0, io.SeekEnd); end != int64(len(data)) {
		t.Fatalf("size by seek %d", end)
	}
	if n, err := obj.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read at end: %d %v", n, err)
	}
}

func testWrongSize(t *testing.T, s Store) {
	mustPut(t, s, "k", []byte("original"), "text/plain")
	for _, c := range []struct {
		body string
		size int64
	}{{"too short", 20}, {"too long by far", 3}} {
		_, err := s.Put(context.Background(), "k", strings.NewReader(c.body), c.size, "text/plain")
		if !errors.Is(err, ErrSize) {
			t.Fatalf("body %q size %d: err %v, want ErrSize", c.body, c.size, err)
		}
	}
	// A failing reader leaves no object either.
	_, err := s.Put(context.Background(), "k", io.MultiReader(strings.NewReader("abc"), errReader{}), 10, "text/plain")
	if err == nil {
		t.Fatal("a failing reader was stored")
	}
	if got := readAll(t, s, "k"); string(got) != "original" {
		t.Fatalf("failed puts changed the object: %q", got)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func testNotFoundAndDelete(t *testing.T, s Store) {
	ctx := context.Background()
	if _, err := s.Open(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open missing: %v", err)
	}
	if _, err := s.Stat(ctx, "dir/missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat missing: %v", err)
	}
	mustPut(t, s, "dir/x", []byte("x"), "")
	if _, err := s.Stat(ctx, "dir"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a key's prefix is not an object: %v", err)
	}
	if err := s.Delete(ctx, "dir/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "dir/x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open deleted: %v", err)
	}
	if err := s.Delete(ctx, "dir/x"); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
}

func testInvalidKeys(t *testing.T, s Store) {
	ctx := context.Background()
	for _, k := range []string{"", "/abs", "a//b", "../x", "a/../../x", ".hidden", "a/.", "sp ace", "q?x", "é", strings.Repeat("a", MaxKey+1), "a/"} {
		if _, err := s.Put(ctx, k, strings.NewReader("x"), 1, ""); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("put %q: %v", k, err)
		}
		if _, err := s.Open(ctx, k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("open %q: %v", k, err)
		}
	}
}

// Writers racing on one key leave exactly one of their versions, whole.
func testConcurrentOverwrites(t *testing.T, s Store) {
	versions := make([][]byte, 8)
	for i := range versions {
		versions[i] = bytes.Repeat([]byte{byte('a' + i)}, 64<<10+i)
	}
	var wg sync.WaitGroup
	for _, v := range versions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Put(context.Background(), "race", bytes.NewReader(v), int64(len(v)), ""); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got := readAll(t, s, "race")
	for _, v := range versions {
		if bytes.Equal(got, v) {
			return
		}
	}
	t.Fatalf("object is none of the versions written (%d bytes)", len(got))
}

// The point of Object being a ReadSeeker: http.ServeContent answers
// conditional and Range requests from any engine.
func testServeContent(t *testing.T, s Store) {
	data := []byte("0123456789abcdef")
	mustPut(t, s, "img", data, "image/png")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		obj, err := s.Open(r.Context(), "img")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer obj.Close()
		info := obj.Info()
		w.Header().Set("ETag", info.ETag)
		w.Header().Set("Content-Type", info.ContentType)
		http.ServeContent(w, r, "", info.ModTime, obj)
	})
	get := func(hdr map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/", nil)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	full := get(nil)
	if full.Code != 200 || full.Body.String() != string(data) || full.Header().Get("Content-Type") != "image/png" {
		t.Fatalf("full: %d %q", full.Code, full.Body)
	}
	etag := full.Header().Get("ETag")
	if w := get(map[string]string{"Range": "bytes=4-7"}); w.Code != 206 || w.Body.String() != "4567" {
		t.Fatalf("range: %d %q", w.Code, w.Body)
	}
	if w := get(map[string]string{"Range": "bytes=-3"}); w.Code != 206 || w.Body.String() != "def" {
		t.Fatalf("suffix range: %d %q", w.Code, w.Body)
	}
	if w := get(map[string]string{"If-None-Match": etag}); w.Code != 304 {
		t.Fatalf("If-None-Match: %d", w.Code)
	}
	if w := get(map[string]string{"Range": "bytes=99-"}); w.Code != 416 {
		t.Fatalf("unsatisfiable range: %d", w.Code)
	}
}
