package albums

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/host/hosttest"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// engineSets are the engine combinations the end-to-end tests run on.
var engineSets = []struct {
	name string
	make func(t *testing.T) host.Engines
}{
	{"Embedded+SQLite+Local", func(t *testing.T) host.Engines { return host.Engines{} }},
	{"NATS+PostgreSQL+Redis+S3", func(t *testing.T) host.Engines {
		e := isolated(t, testsvc.NATS(t), testsvc.Postgres(t))
		e.Cache = testsvc.Redis(t)
		e.Blob = s3Server(t)
		return e
	}},
	{"RabbitMQ+MariaDB", func(t *testing.T) host.Engines { return isolated(t, testsvc.AMQP(t), testsvc.MySQL(t)) }},
}

func isolated(t *testing.T, brokerURL, dbURL string) host.Engines {
	ns := testsvc.Name("albumstest")
	testsvc.CleanupBroker(t, brokerURL, ns)
	testsvc.CleanupStreams(t, brokerURL, ns, ReviewTopic)
	return host.Engines{Broker: brokerURL, DB: dbURL, Namespace: ns, GroupExpiry: time.Minute}
}

// s3Server runs a real S3-protocol server (gofakes3) on loopback and
// returns the blob URL pointing at it.
func s3Server(t *testing.T) string {
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	return "s3://covers?endpoint=" + srv.URL
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.ReviewWait = 5 * time.Millisecond
	return cfg
}

func start(t *testing.T, e host.Engines, cfg Config, got ...func(*Service, *host.Deps)) string {
	t.Helper()
	return hosttest.Start(t, e, func(ctx context.Context, d *host.Deps) (host.System, error) {
		s, err := New(ctx, d, cfg)
		for _, g := range got {
			g(s, d)
		}
		return s, err
	})
}

func pngImage(t testing.TB, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := range w {
		img.Set(x, x%h, color.RGBA{R: uint8(x), G: 100, B: 200, A: 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func jpegImage(t testing.TB) []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8)), nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// part is one multipart part; an empty name is skipped.
type part struct {
	name, filename, contentType string
	body                        []byte
}

func multipartBody(t testing.TB, parts ...part) (string, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := map[string][]string{"Content-Disposition": {`form-data; name="` + p.name + `"`}}
		if p.filename != "" {
			h["Content-Disposition"][0] += `; filename="` + p.filename + `"`
		}
		if p.contentType != "" {
			h["Content-Type"] = []string{p.contentType}
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(p.body)
	}
	_ = mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

func profile(artist, title string, year int) part {
	b, _ := json.Marshal(Profile{Artist: artist, Title: title, Year: year})
	return part{name: "profile", contentType: "application/json", body: b}
}

type created struct {
	AlbumID   string `json:"albumId"`
	ImageSize int64  `json:"imageSize"`
	ImageURL  string `json:"imageUrl"`
}

func createAlbum(t testing.TB, base, artist, title string, year int, img []byte) created {
	t.Helper()
	ct, body := multipartBody(t, profile(artist, title, year), part{name: "image", filename: "cover.bin", body: img})
	var c created
	if code, raw := do(t, "POST", base+"/api/v1/albums", ct, body, &c); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, raw)
	}
	return c
}

// do sends a request and decodes a JSON answer into v (if not nil); it
// returns the status and the raw body. Every answer must be JSON.
func do(t testing.TB, method, url, contentType string, body []byte, v any) (int, string) {
	t.Helper()
	resp := send(t, method, url, contentType, body, nil)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: %d with Content-Type %q: %s", method, url, resp.StatusCode, ct, raw)
	}
	if v != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, raw)
		}
	}
	return resp.StatusCode, string(raw)
}

func send(t testing.TB, method, url, contentType string, body []byte, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func host0() host.Engines { return host.Engines{} }
