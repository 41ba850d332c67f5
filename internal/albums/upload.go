package albums

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // registers the decoders DecodeConfig checks uploads with
	_ "image/png"
	"io"
	"mime"
	"mime/multipart"
	"net/http"

	"github.com/scalelab/scalelab/internal/platform/apperr"
)

const (
	maxProfile  = 16 << 10
	maxText     = 200
	minYear     = 1000
	maxYear     = 9999
	maxDimPixel = 20_000
)

// upload is a parsed POST /api/v1/albums.
type upload struct {
	Profile   Profile
	Image     []byte
	ImageType string // image/jpeg or image/png
}

// parseUpload reads the multipart body: a "profile" part (read by
// readProfile) and an "image" part (JPEG or PNG of at most maxImage bytes). The image type is
// decided by the bytes, never by the file name or the part's Content-Type:
// the header must decode as a JPEG or PNG whose dimensions are sane.
func parseUpload(r *http.Request, maxImage int64, readProfile func(io.Reader) (Profile, error)) (*upload, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, apperr.E(apperr.Invalid, "the body must be multipart/form-data with a profile part (JSON) and an image part")
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	var up upload
	var haveProfile, haveImage bool
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, bodyError(err, "malformed multipart body")
		}
		switch part.FormName() {
		case "profile":
			if haveProfile {
				return nil, apperr.E(apperr.Invalid, "more than one profile part")
			}
			if up.Profile, err = readProfile(part); err != nil {
				return nil, err
			}
			haveProfile = true
		case "image":
			if haveImage {
				return nil, apperr.E(apperr.Invalid, "more than one image part")
			}
			if up.Image, up.ImageType, err = readImage(part, maxImage); err != nil {
				return nil, err
			}
			haveImage = true
		default:
			return nil, apperr.E(apperr.Invalid, "unexpected part %q: only profile and image", clip(part.FormName()))
		}
	}
	switch {
	case !haveProfile:
		return nil, apperr.E(apperr.Invalid, "missing the profile part (JSON {\"artist\",\"title\",\"year\"})")
	case !haveImage:
		return nil, apperr.E(apperr.Invalid, "missing the image part (JPEG or PNG)")
	}
	return &up, nil
}

// bodyError maps a failure to read the body to a client error.
func bodyError(err error, what string) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return apperr.E(apperr.TooLarge, "body is larger than %d bytes", tooLarge.Limit)
	}
	return apperr.E(apperr.Invalid, "%s: %s", what, err.Error())
}

func readImage(r io.Reader, maxImage int64) ([]byte, string, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxImage+1))
	if err != nil {
		return nil, "", bodyError(err, "reading the image part")
	}
	if int64(len(data)) > maxImage {
		return nil, "", apperr.E(apperr.TooLarge, "the image is larger than %d bytes", maxImage)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil || (format != "jpeg" && format != "png") {
		return nil, "", apperr.E(apperr.Invalid, "the image must be a JPEG or PNG file (checked by its content)")
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > maxDimPixel || cfg.Height > maxDimPixel {
		return nil, "", apperr.E(apperr.Invalid, "the image is %d×%d pixels: each side must be 1–%d", cfg.Width, cfg.Height, maxDimPixel)
	}
	return data, "image/" + format, nil
}

func clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	return fmt.Sprintf("%.40s…", s)
}
