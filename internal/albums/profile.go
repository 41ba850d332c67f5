package albums

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// Profile is what an upload says of its album.
type Profile struct {
	Artist string `json:"artist"`
	Title  string `json:"title"`
	Year   int    `json:"year"` // a number, or a string of digits (what the classic course clients send)
}

// UnmarshalJSON reads a profile whose year is a number or a numeric
// string ("1977"); unknown fields are refused.
func (p *Profile) UnmarshalJSON(data []byte) error {
	var raw struct {
		Artist string          `json:"artist"`
		Title  string          `json:"title"`
		Year   json.RawMessage `json:"year"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	p.Artist, p.Title = raw.Artist, raw.Title
	year := bytes.TrimSpace(raw.Year)
	switch {
	case len(year) == 0 || string(year) == "null":
		p.Year = 0
	case year[0] == '"':
		var s string
		if err := json.Unmarshal(year, &s); err != nil {
			return err
		}
		n, err := parseYear(s)
		if err != nil {
			return err
		}
		p.Year = n
	default:
		if err := json.Unmarshal(year, &p.Year); err != nil {
			return fmt.Errorf("year %s is not a whole number", year)
		}
	}
	return nil
}

// parseYear reads a year written as digits: no sign, no spaces, no
// fraction (the range is Validate's to check).
func parseYear(s string) (int, error) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, fmt.Errorf("year %q is not a number", clip(s))
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("year %q is not a number", clip(s))
	}
	return n, nil
}

// Validate checks the profile's fields.
func (p Profile) Validate() error {
	for _, f := range []struct{ name, v string }{{"artist", p.Artist}, {"title", p.Title}} {
		if strings.TrimSpace(f.v) == "" {
			return apperr.E(apperr.Invalid, "profile.%s: required", f.name)
		}
		if !utf8.ValidString(f.v) || utf8.RuneCountInString(f.v) > maxText {
			return apperr.E(apperr.Invalid, "profile.%s: at most %d characters of valid UTF-8", f.name, maxText)
		}
		if strings.ContainsAny(f.v, "\x00\r\n") {
			return apperr.E(apperr.Invalid, "profile.%s: no control characters", f.name)
		}
	}
	if p.Year < minYear || p.Year > maxYear {
		return apperr.E(apperr.Invalid, "profile.year: a year from %d to %d, got %d", minYear, maxYear, p.Year)
	}
	return nil
}

// readProfile reads at most maxProfile bytes of a profile part.
func readProfile(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxProfile+1))
	if err != nil {
		return nil, bodyError(err, "reading the profile part")
	}
	if len(data) > maxProfile {
		return nil, apperr.E(apperr.TooLarge, "the profile part is larger than %d bytes", maxProfile)
	}
	return data, nil
}

// parseProfile reads a profile part written as JSON.
func parseProfile(r io.Reader) (Profile, error) {
	data, err := readProfile(r)
	if err != nil {
		return Profile{}, err
	}
	return profileFromJSON(data)
}

func profileFromJSON(data []byte) (Profile, error) {
	var p Profile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, apperr.E(apperr.Invalid, "profile: invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return p, apperr.E(apperr.Invalid, "profile: more than one JSON value")
	}
	return p, p.Validate()
}

// parseClassicProfile reads the profile part as the classic course
// clients send it: JSON, or — what the swagger-codegen Java client sends
// for an object-typed form field — the model's toString:
//
//	class AlbumsProfile {
//	    artist: Sex Pistols
//	    title: Never Mind The Bollocks!
//	    year: 1977
//	}
//
// A value is the rest of its line after "key: "; the client writes an
// unset field as the word null, which counts as missing.
func parseClassicProfile(r io.Reader) (Profile, error) {
	data, err := readProfile(r)
	if err != nil {
		return Profile{}, err
	}
	text := strings.TrimSpace(string(data))
	if strings.HasPrefix(text, "{") {
		return profileFromJSON(data)
	}
	p, err := profileFromText(text)
	if err != nil {
		return p, err
	}
	return p, p.Validate()
}

func profileFromText(text string) (Profile, error) {
	var p Profile
	head, rest, ok := strings.Cut(text, "{")
	if !ok || !strings.HasPrefix(strings.TrimSpace(head), "class ") || !strings.HasSuffix(rest, "}") {
		return p, apperr.E(apperr.Invalid, `profile: neither JSON nor "class AlbumsProfile { artist: … title: … year: … }"`)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(rest, "}"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok {
			return p, apperr.E(apperr.Invalid, "profile: line %q is not key: value", clip(line))
		}
		if seen[key] {
			return p, apperr.E(apperr.Invalid, "profile: %q given twice", clip(key))
		}
		seen[key] = true
		if value == "null" {
			value = ""
		}
		switch key {
		case "artist":
			p.Artist = value
		case "title":
			p.Title = value
		case "year":
			if value == "" {
				continue // Validate says it is required
			}
			n, err := parseYear(value)
			if err != nil {
				return p, apperr.E(apperr.Invalid, "profile.%s", err.Error())
			}
			p.Year = n
		default:
			return p, apperr.E(apperr.Invalid, "profile: unknown field %q (artist, title, year)", clip(key))
		}
	}
	return p, nil
}
