package albums

import (
	"bytes"
	"net/http/httptest"
	"testing"

	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// Whatever the body, parsing an upload ends in a client error (4xx) or a
// valid upload: never a panic, never an internal error.
func FuzzParseUpload(f *testing.F) {
	ct, body := multipartBody(f, profile("A", "B", 2000), part{name: "image", body: pngImage(f, 2, 2)})
	f.Add(ct, body)
	ct2, body2 := multipartBody(f, part{name: "profile", body: []byte(`{"artist":1}`)}, part{name: "image", body: jpegImage(f)})
	f.Add(ct2, body2)
	f.Add("multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n\x89PNG\r\n--x--"))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		r := httptest.NewRequest("POST", "/api/v1/albums", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		up, err := parseUpload(r, 64<<10, parseProfile)
		if err != nil {
			if c := apperr.CodeOf(err); c != apperr.Invalid && c != apperr.TooLarge {
				t.Fatalf("error with code %s: %v", c, err)
			}
			return
		}
		if up.Profile.Validate() != nil || (up.ImageType != "image/png" && up.ImageType != "image/jpeg") {
			t.Fatalf("accepted an invalid upload: %+v", up.Profile)
		}
	})
}
