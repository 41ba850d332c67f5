package albums

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mime/multipart"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/cache"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/host/hosttest"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// swaggerProfile is AlbumsProfile.toString() of the swagger-codegen Java
// client, which is what that client puts in the profile part.
func swaggerProfile(artist, title, year string) string {
	return "class AlbumsProfile {\n    artist: " + artist + "\n    title: " + title + "\n    year: " + year + "\n}"
}

// swaggerUpload builds the body the generated Java client (OkHttp) sends
// for newAlbum(image, profile): the file part with its name and guessed
// type, the profile part with no Content-Type at all.
func swaggerUpload(t testing.TB, profileText string, img []byte) (string, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	w, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Disposition": {`form-data; name="image"; filename="nmtb.png"`},
		"Content-Type":        {"image/png"},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(img)
	w, _ = mw.CreatePart(textproto.MIMEHeader{"Content-Disposition": {`form-data; name="profile"`}})
	_, _ = w.Write([]byte(profileText))
	_ = mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// The course's client runs unchanged against base path …/classic: create
// with the toString profile, read back, like twice and dislike once, read
// the counts — every value a string, as the spec has it.
func TestClassicAPIAsItsGeneratedClientUsesIt(t *testing.T) {
	base := start(t, host0(), testConfig())
	classic := base + "/classic"
	img := pngImage(t, 16, 16)
	ct, body := swaggerUpload(t, swaggerProfile("Sex Pistols", "Never Mind The Bollocks!", "1977"), img)
	var meta struct{ AlbumID, ImageSize string }
	if code, raw := do(t, "POST", classic+"/albums", ct, body, &meta); code != http.StatusOK || !strings.Contains(raw, `"albumID"`) {
		t.Fatalf("newAlbum: %d %s", code, raw)
	}
	if meta.ImageSize != strconv.Itoa(len(img)) || meta.AlbumID == "" {
		t.Fatalf("ImageMetaData %+v, want imageSize %d", meta, len(img))
	}

	var info map[string]any
	if code, raw := do(t, "GET", classic+"/albums/"+meta.AlbumID, "", nil, &info); code != 200 {
		t.Fatalf("getAlbumByKey: %d %s", code, raw)
	}
	want := map[string]any{"artist": "Sex Pistols", "title": "Never Mind The Bollocks!", "year": "1977"}
	if len(info) != 3 || info["artist"] != want["artist"] || info["title"] != want["title"] || info["year"] != want["year"] {
		t.Fatalf("AlbumInfo %v, want %v", info, want)
	}
	var a albumJSON // the same album through the store's own API
	if code, raw := do(t, "GET", base+"/api/v1/albums/"+meta.AlbumID, "", nil, &a); code != 200 || a.Year != 1977 || a.ImageType != "image/png" {
		t.Fatalf("the classic album under /api/v1: %d %s", code, raw)
	}

	for _, kind := range []string{"like", "like", "dislike"} {
		var m classicMsg
		if code, raw := do(t, "POST", classic+"/review/"+kind+"/"+meta.AlbumID, "", nil, &m); code != http.StatusCreated || m.Msg == "" {
			t.Fatalf("review %s: %d %s", kind, code, raw)
		}
	}
	// The consumer applies the stream in order: the dislike, sent last, is
	// counted only with both likes before it.
	var likes map[string]string
	testsvc.WaitUntil(t, "the three reviews applied", 20*time.Second, func() bool {
		if code, raw := do(t, "GET", classic+"/review/"+meta.AlbumID, "", nil, &likes); code != 200 {
			t.Fatalf("getLikes: %d %s", code, raw)
		}
		return likes["dislikes"] == "1"
	})
	if len(likes) != 2 || likes["likes"] != "2" {
		t.Fatalf("Likes %v, want likes 2 dislikes 1", likes)
	}

	// A JSON profile works too, with the year as a string and the
	// capitalised keys some course clients write.
	ct, body = swaggerUpload(t, `{"Artist":"Can","Title":"Tago Mago","Year":"1971"}`, img)
	if code, raw := do(t, "POST", classic+"/albums", ct, body, &meta); code != http.StatusOK {
		t.Fatalf("newAlbum with JSON profile: %d %s", code, raw)
	}
	if code, raw := do(t, "GET", classic+"/albums/"+meta.AlbumID, "", nil, &info); code != 200 || info["year"] != "1971" || info["artist"] != "Can" {
		t.Fatalf("JSON-profile album: %d %s", code, raw)
	}
}

// Every refusal under classic/ is a 4xx whose body is the spec's ErrorMsg.
func TestClassicAPIBadInput(t *testing.T) {
	base := start(t, host0(), testConfig())
	classic := base + "/classic"
	img := pngImage(t, 4, 4)
	ct, body := swaggerUpload(t, swaggerProfile("A", "B", "2001"), img)
	var meta struct{ AlbumID string }
	if code, raw := do(t, "POST", classic+"/albums", ct, body, &meta); code != 200 {
		t.Fatalf("newAlbum: %d %s", code, raw)
	}
	upload := func(profileText string) (string, []byte) { return swaggerUpload(t, profileText, img) }
	cases := []struct {
		name, method, path string
		ct                 string
		body               []byte
		want               int
	}{
		{"like or not", "POST", "/review/love/" + meta.AlbumID, "", nil, 400},
		{"unknown album review", "POST", "/review/like/123", "", nil, 404},
		{"unknown album likes", "GET", "/review/123", "", nil, 404},
		{"unknown album", "GET", "/albums/123", "", nil, 404},
		{"malformed album ID", "GET", "/albums/albumID_example", "", nil, 400},
		{"malformed review ID", "POST", "/review/like/-1", "", nil, 400},
		{"not multipart", "POST", "/albums", "application/json", []byte(`{}`), 400},
	}
	for _, p := range []struct{ name, text string }{
		{"year not a number", swaggerProfile("A", "B", "yearhaha")},
		{"year signed", swaggerProfile("A", "B", "+1977")},
		{"unset artist", swaggerProfile("null", "B", "1977")},
		{"unknown field", "class AlbumsProfile {\n    artist: A\n    title: B\n    year: 1977\n    label: C\n}"},
		{"field twice", "class AlbumsProfile {\n    artist: A\n    artist: C\n    title: B\n    year: 1977\n}"},
		{"no class", "artist: A\ntitle: B\nyear: 1977"},
		{"bad JSON", `{"artist":"A",`},
	} {
		ct, body := upload(p.text)
		cases = append(cases, struct {
			name, method, path string
			ct                 string
			body               []byte
			want               int
		}{"profile: " + p.name, "POST", "/albums", ct, body, 400})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := send(t, c.method, classic+c.path, c.ct, c.body, nil)
			defer resp.Body.Close()
			var m classicMsg
			err := json.NewDecoder(resp.Body).Decode(&m)
			if resp.StatusCode != c.want || err != nil || m.Msg == "" {
				t.Fatalf("%s %s: %d (want %d), ErrorMsg %+v, decode error %v", c.method, c.path, resp.StatusCode, c.want, m, err)
			}
		})
	}
}

func TestParseClassicProfile(t *testing.T) {
	good := []struct {
		text string
		want Profile
	}{
		{swaggerProfile("Sex Pistols", "Never Mind The Bollocks!", "1977"), Profile{"Sex Pistols", "Never Mind The Bollocks!", 1977}},
		{"class AlbumsProfile {\r\n    artist: A: the band\r\n    title:  B \r\n    year: 01999\r\n}\r\n", Profile{"A: the band", "B", 1999}},
		{"class AlbumsProfile {\n    year: 2000\n    title: T\n    artist: X\n}", Profile{"X", "T", 2000}},
		{`{"artist":"A","title":"B","year":1977}`, Profile{"A", "B", 1977}},
		{` {"artist":"A","title":"B","year":"1977"}`, Profile{"A", "B", 1977}},
	}
	for _, g := range good {
		p, err := parseClassicProfile(strings.NewReader(g.text))
		if err != nil || p != g.want {
			t.Errorf("%q: %+v, %v; want %+v", g.text, p, err, g.want)
		}
	}
	for _, bad := range []string{
		"", "class AlbumsProfile {", "class AlbumsProfile {\n artist A\n}", swaggerProfile("A", "B", "19.77"),
		swaggerProfile("A", "", "1977"), swaggerProfile("A", "B", "null"), swaggerProfile("A", "B", "1977 "+strings.Repeat("9", 30)),
		"AlbumsProfile {\n artist: A\n title: B\n year: 1977\n}", strings.Repeat("x", maxProfile+1),
	} {
		if p, err := parseClassicProfile(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted as %+v", clip(bad), p)
		} else if c := apperr.CodeOf(err); c != apperr.Invalid && c != apperr.TooLarge {
			t.Errorf("%q: error code %s", clip(bad), c)
		}
	}
}

// Whatever the profile part says, the classic parser ends in a client
// error or a valid profile.
func FuzzParseClassicProfile(f *testing.F) {
	f.Add(swaggerProfile("A", "B", "1977"))
	f.Add(`{"artist":"A","title":"B","year":"1977"}`)
	f.Add("class X {\n a: b\n}")
	f.Fuzz(func(t *testing.T, text string) {
		p, err := parseClassicProfile(strings.NewReader(text))
		if err != nil {
			if c := apperr.CodeOf(err); c != apperr.Invalid && c != apperr.TooLarge {
				t.Fatalf("error with code %s: %v", c, err)
			}
			return
		}
		if p.Validate() != nil {
			t.Fatalf("accepted an invalid profile %+v", p)
		}
	})
}

// ttlCache records the TTL each key was last cached with.
type ttlCache struct {
	cache.Cache
	mu   sync.Mutex
	ttls map[string]time.Duration
}

func (c *ttlCache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	c.mu.Lock()
	c.ttls[key] = ttl
	c.mu.Unlock()
	return c.Cache.Set(ctx, key, value, ttl)
}

// Review counts are cached for ReviewsTTL, not the albums' CacheTTL: a
// read that raced the consumer's invalidation (the CI run that found it
// waited 20 s for counts cached for 10 minutes) is wrong for a second at
// most.
func TestReviewCountsAreCachedBriefly(t *testing.T) {
	var rec *ttlCache
	base := hosttest.Start(t, host0(), func(ctx context.Context, d *host.Deps) (host.System, error) {
		rec = &ttlCache{Cache: d.Cache, ttls: map[string]time.Duration{}}
		d.Cache = rec
		return New(ctx, d, testConfig())
	})
	ctype, body := swaggerUpload(t, swaggerProfile("A", "B", "2001"), pngImage(t, 4, 4))
	code, raw := do(t, "POST", base+"/classic/albums", ctype, body, nil)
	if code != 200 {
		t.Fatalf("create: %d %s", code, raw)
	}
	var meta struct{ AlbumID string }
	_ = json.Unmarshal([]byte(raw), &meta)
	if code, raw := do(t, "GET", base+"/classic/review/"+meta.AlbumID, "", nil, nil); code != 200 {
		t.Fatalf("likes: %d %s", code, raw)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for key, ttl := range rec.ttls {
		if strings.HasPrefix(key, "albums:reviews:") && ttl != time.Second {
			t.Fatalf("%s cached for %v, want ReviewsTTL (1 s)", key, ttl)
		}
	}
	if len(rec.ttls) == 0 {
		t.Fatal("nothing was cached: the test proved nothing")
	}
}
