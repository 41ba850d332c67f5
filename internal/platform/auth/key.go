package auth

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MinKeyBytes is the shortest cluster key accepted.
const MinKeyBytes = 32

// Key is the cluster key. A nil *Key means "no key": loopback only.
type Key struct {
	secret []byte
}

// ErrWeakKey is returned for a key file that is too short to be a secret.
var ErrWeakKey = errors.New("auth: cluster key too short")

// LoadKey reads the key file at path; an empty path is no key (nil, nil).
// Surrounding white space is ignored, so `scalelab cluster-key > FILE`
// and an editor's trailing newline give the same key.
func LoadKey(path string) (*Key, error) {
	if path == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: cluster key: %w", err)
	}
	return ParseKey(string(raw))
}

// ParseKey makes a key from its text.
func ParseKey(text string) (*Key, error) {
	s := strings.TrimSpace(text)
	if len(s) < MinKeyBytes {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d (make one with `scalelab cluster-key`)", ErrWeakKey, len(s), MinKeyBytes)
	}
	return &Key{secret: []byte(s)}, nil
}

// NewKeyText returns a fresh random key as text (32 random bytes, base64).
func NewKeyText() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// derive returns n bytes bound to purpose: distinct purposes give
// independent keys, so the gossip key says nothing of the CA's.
func (k *Key) derive(purpose string, n int) []byte {
	out, err := hkdf.Key(sha256.New, k.secret, nil, "scalelab/"+purpose, n)
	if err != nil {
		panic(err) // only for n beyond 255*32 bytes
	}
	return out
}

// GossipKey is the AES-256 key of memberlist's keyring.
func (k *Key) GossipKey() []byte {
	if k == nil {
		return nil
	}
	return k.derive("gossip/v1", 32)
}
