package albums

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// The whole album store on each engine set: upload, read (twice: cache),
// image with ETag and Range, listing with filters and cursor, reviews
// applied exactly once and visible through the invalidated cache.
func TestAlbumsEndToEnd(t *testing.T) {
	for _, es := range engineSets {
		t.Run(es.name, func(t *testing.T) {
			base := start(t, es.make(t), testConfig())
			img := pngImage(t, 40, 30)
			c := createAlbum(t, base, "Miles Davis", "Kind of Blue", 1959, img)
			if c.ImageSize != int64(len(img)) || !strings.HasSuffix(c.ImageURL, "/api/v1/albums/"+c.AlbumID+"/image") {
				t.Fatalf("created %+v", c)
			}
			for range 2 { // the second read comes from the cache
				var a albumJSON
				if code, raw := do(t, "GET", base+"/api/v1/albums/"+c.AlbumID, "", nil, &a); code != 200 {
					t.Fatalf("get: %d %s", code, raw)
				}
				if a.Artist != "Miles Davis" || a.Title != "Kind of Blue" || a.Year != 1959 || a.ImageType != "image/png" {
					t.Fatalf("album %+v", a)
				}
			}
			testImage(t, c.ImageURL, img)
			testListing(t, base)
			testReviews(t, base, c.AlbumID)
		})
	}
}

func testImage(t *testing.T, url string, img []byte) {
	resp := send(t, "GET", url, "", nil, nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || !bytes.Equal(body, img) || resp.Header.Get("Content-Type") != "image/png" || etag == "" {
		t.Fatalf("image: %d, %d bytes, type %q, etag %q", resp.StatusCode, len(body), resp.Header.Get("Content-Type"), etag)
	}
	resp = send(t, "GET", url, "", nil, map[string]string{"Range": "bytes=8-15"})
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || !bytes.Equal(body, img[8:16]) {
		t.Fatalf("range: %d %q", resp.StatusCode, body)
	}
	resp = send(t, "GET", url, "", nil, map[string]string{"If-None-Match": etag})
	resp.Body.Close()
	if resp.StatusCode != 304 {
		t.Fatalf("If-None-Match: %d", resp.StatusCode)
	}
}

func testListing(t *testing.T, base string) {
	img := jpegImage(t)
	for i := range 5 {
		createAlbum(t, base, "Nina Simone", fmt.Sprintf("Album %d", i), 1960+i%2, img)
	}
	type page struct {
		Albums     []albumJSON `json:"albums"`
		NextCursor string      `json:"nextCursor"`
	}
	var seen []string
	url := base + "/api/v1/albums?artist=Nina+Simone&limit=2"
	for range 10 {
		var p page
		if code, raw := do(t, "GET", url, "", nil, &p); code != 200 {
			t.Fatalf("list: %d %s", code, raw)
		}
		for _, a := range p.Albums {
			if a.Artist != "Nina Simone" || a.ImageType != "image/jpeg" {
				t.Fatalf("listed %+v", a)
			}
			seen = append(seen, a.Title)
		}
		if p.NextCursor == "" {
			break
		}
		url = base + "/api/v1/albums?artist=Nina+Simone&limit=2&cursor=" + p.NextCursor
	}
	want := []string{"Album 4", "Album 3", "Album 2", "Album 1", "Album 0"} // newest first
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("pages gave %v, want %v", seen, want)
	}
	var p page
	do(t, "GET", base+"/api/v1/albums?artist=Nina+Simone&year=1961", "", nil, &p)
	if len(p.Albums) != 2 {
		t.Fatalf("year filter: %d albums, want 2", len(p.Albums))
	}
	do(t, "GET", base+"/api/v1/albums?year=1959", "", nil, &p)
	if len(p.Albums) != 1 || p.Albums[0].Title != "Kind of Blue" {
		t.Fatalf("year-only filter: %+v", p.Albums)
	}
}

type counts struct {
	Likes    int64 `json:"likes"`
	Dislikes int64 `json:"dislikes"`
}

func testReviews(t *testing.T, base, id string) {
	var c counts
	do(t, "GET", base+"/api/v1/albums/"+id+"/reviews", "", nil, &c) // caches 0/0
	if c != (counts{}) {
		t.Fatalf("new album has reviews %+v", c)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kind := "like"
			if i%4 == 0 {
				kind = "dislike"
			}
			if code, raw := do(t, "POST", base+"/api/v1/albums/"+id+"/reviews/"+kind, "", nil, nil); code != http.StatusAccepted {
				t.Errorf("review: %d %s", code, raw)
			}
		}()
	}
	wg.Wait()
	// A sentinel review, published after the 40: the consumer applies the
	// stream in order, so once it is counted every earlier review has been
	// counted too — once, or a double count would show.
	if code, raw := do(t, "POST", base+"/api/v1/albums/"+id+"/reviews/like", "", nil, nil); code != http.StatusAccepted {
		t.Fatalf("sentinel review: %d %s", code, raw)
	}
	testsvc.WaitUntil(t, "reviews applied", 20*time.Second, func() bool {
		do(t, "GET", base+"/api/v1/albums/"+id+"/reviews", "", nil, &c)
		return c.Likes+c.Dislikes >= 41
	})
	if c != (counts{Likes: 31, Dislikes: 10}) {
		t.Fatalf("counts %+v, want 31 likes (one the sentinel) and 10 dislikes", c)
	}
}

// Bad input is a 4xx with a JSON error, never a 5xx.
func TestAlbumsBadInput(t *testing.T) {
	base := start(t, host0(), testConfig())
	img := pngImage(t, 4, 4)
	gif := []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;")
	big := append(pngImage(t, 4, 4), make([]byte, 5<<20)...)
	ok := profile("A", "B", 2000)
	cases := []struct {
		name  string
		ct    string
		body  []byte
		want  int
		error string
	}{
		{"not multipart", "application/json", []byte(`{}`), 400, "multipart/form-data"},
		{"no content type", "", []byte(`x`), 400, "multipart"},
		{"garbage multipart", "multipart/form-data; boundary=xyz", []byte("--xyz\r\nnot a header\r\n"), 400, ""},
	}
	add := func(name string, want int, errText string, parts ...part) {
		ct, body := multipartBody(t, parts...)
		cases = append(cases, struct {
			name  string
			ct    string
			body  []byte
			want  int
			error string
		}{name, ct, body, want, errText})
	}
	add("missing image", 400, "missing the image part", ok)
	add("missing profile", 400, "missing the profile part", part{name: "image", body: img})
	add("gif", 400, "JPEG or PNG", ok, part{name: "image", body: gif})
	add("text named png", 400, "JPEG or PNG", ok, part{name: "image", filename: "cover.png", contentType: "image/png", body: []byte("hello")})
	add("truncated png", 400, "JPEG or PNG", ok, part{name: "image", body: img[:20]})
	add("too large", 413, "larger than", ok, part{name: "image", body: big})
	add("unknown part", 400, "unexpected part", ok, part{name: "image", body: img}, part{name: "x", body: []byte("1")})
	add("two images", 400, "more than one image", ok, part{name: "image", body: img}, part{name: "image", body: img})
	add("profile not json", 400, "profile: invalid JSON", part{name: "profile", body: []byte("{")}, part{name: "image", body: img})
	add("profile unknown field", 400, "unknown field", part{name: "profile", body: []byte(`{"artist":"a","title":"b","year":2000,"x":1}`)}, part{name: "image", body: img})
	add("profile year not a number", 400, "not a number", part{name: "profile", body: []byte(`{"artist":"a","title":"b","year":"nineteen"}`)}, part{name: "image", body: img})
	add("profile year signed string", 400, "not a number", part{name: "profile", body: []byte(`{"artist":"a","title":"b","year":"+1977"}`)}, part{name: "image", body: img})
	add("profile year fraction", 400, "not a whole number", part{name: "profile", body: []byte(`{"artist":"a","title":"b","year":1977.5}`)}, part{name: "image", body: img})
	add("profile year string out of range", 400, "profile.year", part{name: "profile", body: []byte(`{"artist":"a","title":"b","year":"99"}`)}, part{name: "image", body: img})
	add("empty artist", 400, "profile.artist: required", profile(" ", "b", 2000), part{name: "image", body: img})
	add("long title", 400, "profile.title", profile("a", strings.Repeat("t", 201), 2000), part{name: "image", body: img})
	add("year zero", 400, "profile.year", profile("a", "b", 0), part{name: "image", body: img})
	// The classic course clients send the year as a string: accepted.
	ct, body := multipartBody(t, part{name: "profile", body: []byte(`{"artist":"Fleetwood Mac","title":"Rumours","year":"1977"}`)}, part{name: "image", body: img})
	var created, got albumJSON
	if code, raw := do(t, "POST", base+"/api/v1/albums", ct, body, &created); code != 201 {
		t.Fatalf("year as a string: %d %s", code, raw)
	}
	if code, raw := do(t, "GET", base+"/api/v1/albums/"+created.AlbumID, "", nil, &got); code != 200 || got.Year != 1977 {
		t.Fatalf("the album made with year \"1977\": %d %s", code, raw)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, raw := do(t, "POST", base+"/api/v1/albums", c.ct, c.body, nil)
			if code != c.want || !strings.Contains(raw, c.error) {
				t.Fatalf("%d %s, want %d containing %q", code, raw, c.want, c.error)
			}
		})
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/api/v1/albums/0", 400}, {"GET", "/api/v1/albums/abc", 400}, {"GET", "/api/v1/albums/99999999999999999999", 400},
		{"GET", "/api/v1/albums/123", 404}, {"GET", "/api/v1/albums/123/image", 404}, {"GET", "/api/v1/albums/123/reviews", 404},
		{"POST", "/api/v1/albums/123/reviews/like", 404}, {"POST", "/api/v1/albums/123/reviews/love", 404},
		{"GET", "/api/v1/albums?year=abc", 400}, {"GET", "/api/v1/albums?cursor=-1", 400}, {"GET", "/api/v1/albums?limit=1000", 400},
	} {
		if code, raw := do(t, c.method, base+c.path, "", nil, nil); code != c.want {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, code, raw, c.want)
		}
	}
}

// An album's answer is encoded once and then served as the same bytes
// from the process (albums never change); an unknown album is not kept.
func TestGetServesTheEncodedAnswer(t *testing.T) {
	var svc *Service
	base := start(t, host0(), testConfig(), func(s *Service, _ *host.Deps) { svc = s })
	c := createAlbum(t, base, "Alice Coltrane", "Journey in Satchidananda", 1971, pngImage(t, 2, 2))
	hits := func() float64 { return testutil.ToFloat64(svc.metrics.responseHits) }
	_, first := do(t, "GET", base+"/api/v1/albums/"+c.AlbumID, "", nil, nil)
	if hits() != 0 {
		t.Fatalf("the first read was served from encoded answers (%v hits)", hits())
	}
	for i := 1; i <= 3; i++ {
		code, again := do(t, "GET", base+"/api/v1/albums/"+c.AlbumID, "", nil, nil)
		if code != 200 || again != first || hits() != float64(i) {
			t.Fatalf("read %d: %d %q (first %q), %v hits", i+1, code, again, first, hits())
		}
	}
	for range 2 {
		if code, raw := do(t, "GET", base+"/api/v1/albums/12345", "", nil, nil); code != 404 {
			t.Fatalf("unknown album: %d %s", code, raw)
		}
	}
	if n := svc.responses.EstimatedSize(); n != 1 || hits() != 3 {
		t.Fatalf("%d answers kept, %v hits: an unknown album was kept or served", n, hits())
	}
}
