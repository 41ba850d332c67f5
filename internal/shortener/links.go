package shortener

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

// CreateRequest is the body of POST /api/v1/links.
type CreateRequest struct {
	URL       string `json:"url"`
	Alias     string `json:"alias,omitempty"`
	ExpiresIn *int64 `json:"expires_in,omitempty"` // seconds
}

// Created is a new link and the token that deletes it.
type Created struct {
	Link        *Link
	DeleteToken string
}

// Create validates req and stores a new link.
func (s *Service) Create(ctx context.Context, req CreateRequest) (*Created, error) {
	if err := s.urls.Validate(req.URL); err != nil {
		return nil, err
	}
	now := s.cfg.Now().UTC()
	l := &Link{URL: req.URL, CreatedAt: now.Truncate(time.Millisecond)}
	if req.ExpiresIn != nil {
		if *req.ExpiresIn < 1 || *req.ExpiresIn > MaxExpiresIn {
			return nil, apperr.E(apperr.Invalid, "expires_in must be from 1 to %d seconds", MaxExpiresIn)
		}
		t := l.CreatedAt.Add(time.Duration(*req.ExpiresIn) * time.Second)
		l.ExpiresAt = &t
	}
	token := randomHex(16)
	l.DeleteTokenHash = hashToken(token)
	if req.Alias != "" {
		if err := ValidateAlias(req.Alias); err != nil {
			return nil, err
		}
		l.Code = req.Alias
		if err := s.store.create(ctx, l); err != nil {
			if errors.Is(err, errDuplicate) {
				return nil, apperr.E(apperr.Conflict, "alias %q is taken", req.Alias)
			}
			return nil, err
		}
	} else if err := s.createWithGeneratedCode(ctx, l); err != nil {
		return nil, err
	}
	// Replace any cached "no such code" (an alias looked up before it
	// existed) here and, through the cache's invalidation, everywhere.
	if err := s.cache.Set(ctx, cacheKey(l.Code), encodeLink(l), s.cfg.CacheTTL); err != nil {
		s.logger.Warn("shortener: caching a new link", "code", l.Code, "err", err)
		_ = s.cache.Delete(ctx, cacheKey(l.Code))
	}
	return &Created{Link: l, DeleteToken: token}, nil
}

// createWithGeneratedCode uses base62 of a fresh Snowflake ID. A collision
// is possible only with a custom alias that happens to spell a future ID;
// then the next ID is tried.
func (s *Service) createWithGeneratedCode(ctx context.Context, l *Link) error {
	for attempt := 0; attempt < 3; attempt++ {
		id, err := s.ids.Next()
		if err != nil {
			return apperr.E(apperr.Unavailable, "cannot issue a code now: %v", err)
		}
		l.Code = snowflake.EncodeBase62(uint64(id))
		err = s.store.create(ctx, l)
		if !errors.Is(err, errDuplicate) {
			return err
		}
	}
	return errors.New("shortener: three generated codes in a row were taken")
}

// Resolve returns the link for code, from the cache when possible. It
// returns NotFound for unknown codes and Gone for expired links.
func (s *Service) Resolve(ctx context.Context, code string) (*Link, error) {
	if !plausibleCode(code) {
		return nil, apperr.E(apperr.NotFound, "no link %q", code)
	}
	key := cacheKey(code)
	if v, ok, err := s.cache.Get(ctx, key); err == nil && ok {
		l, found := decodeLink(code, v)
		if !found {
			s.negativeHits.Inc()
			return nil, apperr.E(apperr.NotFound, "no link %q", code)
		}
		s.hits.Inc()
		return s.live(l)
	} else if err != nil {
		s.logger.Debug("shortener: cache unavailable; reading the database", "err", err)
	}
	// Cache miss: one database read per code however many requests wait.
	v, err, _ := s.loads.Do(code, func() (any, error) {
		// Shared by every waiting request: it must not die with the first
		// caller's request context.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		l, err := s.store.get(ctx, code)
		if err != nil {
			return nil, err
		}
		if l == nil {
			_ = s.cache.Set(ctx, key, notFoundMarker, s.cfg.NegativeTTL)
			return (*Link)(nil), nil
		}
		_ = s.cache.Set(ctx, key, encodeLink(l), s.cfg.CacheTTL)
		return l, nil
	})
	if err != nil {
		s.lookupErrors.Inc()
		return nil, apperr.E(apperr.Unavailable, "link store unavailable")
	}
	l := v.(*Link)
	if l == nil {
		s.dbMisses.Inc()
		return nil, apperr.E(apperr.NotFound, "no link %q", code)
	}
	s.dbHits.Inc()
	return s.live(l)
}

func (s *Service) live(l *Link) (*Link, error) {
	if l.Expired(s.cfg.Now()) {
		return nil, apperr.E(apperr.Gone, "link %q expired at %s", l.Code, l.ExpiresAt.Format(time.RFC3339))
	}
	return l, nil
}

// Get returns a link, expired or not, straight from the store.
func (s *Service) Get(ctx context.Context, code string) (*Link, error) {
	if !plausibleCode(code) {
		return nil, apperr.E(apperr.NotFound, "no link %q", code)
	}
	l, err := s.store.get(ctx, code)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, apperr.E(apperr.NotFound, "no link %q", code)
	}
	return l, nil
}

// Delete removes a link if token is its delete token or the admin token.
func (s *Service) Delete(ctx context.Context, code, token string) error {
	if token == "" {
		return apperr.E(apperr.Unauthorized, "a delete token is required (Authorization: Bearer TOKEN)")
	}
	l, err := s.Get(ctx, code)
	if err != nil {
		return err
	}
	admin := s.admin.Matches(token) // the host's admin token may delete any link
	owner := subtle.ConstantTimeCompare([]byte(hashToken(token)), []byte(l.DeleteTokenHash)) == 1
	if !admin && !owner {
		return apperr.E(apperr.Forbidden, "the token does not match this link")
	}
	if _, err := s.store.delete(ctx, code); err != nil {
		return err
	}
	if err := s.cache.Delete(ctx, cacheKey(code)); err != nil {
		s.logger.Warn("shortener: evicting a deleted link", "code", code, "err", err)
	}
	return nil
}

// Stats returns a link's click statistics.
func (s *Service) Stats(ctx context.Context, code string) (*Stats, error) {
	if _, err := s.Get(ctx, code); err != nil {
		return nil, err
	}
	return s.store.stats(ctx, code, 10)
}

// ShortURL is the public URL of code.
func (s *Service) ShortURL(code string) string { return s.baseURL + "/" + code }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Cache entries: "l:" + code → 'L' + 8-byte expiry (unix ms, 0 = never) + URL,
// or the one byte 'N' for "no such code".
func cacheKey(code string) string { return "l:" + code }

var notFoundMarker = []byte{'N'}

func encodeLink(l *Link) []byte {
	b := make([]byte, 9, 9+len(l.URL))
	b[0] = 'L'
	if l.ExpiresAt != nil {
		binary.BigEndian.PutUint64(b[1:9], uint64(l.ExpiresAt.UnixMilli()))
	}
	return append(b, l.URL...)
}

func decodeLink(code string, b []byte) (*Link, bool) {
	if len(b) < 9 || b[0] != 'L' {
		return nil, false
	}
	l := &Link{Code: code, URL: string(b[9:])}
	if ms := binary.BigEndian.Uint64(b[1:9]); ms != 0 {
		t := time.UnixMilli(int64(ms)).UTC()
		l.ExpiresAt = &t
	}
	return l, true
}
