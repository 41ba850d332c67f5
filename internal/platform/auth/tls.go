package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// PeerServerName is the name in every peer certificate and the one a
// client checks: a peer is identified by the CA that signed it, not by the
// address it happens to listen on.
const PeerServerName = "peer.scalelab.internal"

// Peers is how a node meets the other members: mutual TLS under the
// cluster key, or plain TCP on loopback without one.
type Peers struct {
	name   string
	key    *Key
	server *tls.Config
	client *tls.Config
}

// NewPeers prepares the peer side of the node called name. With a nil key
// the node is in loopback mode.
func NewPeers(k *Key, name string) (*Peers, error) {
	p := &Peers{name: name, key: k}
	if k == nil {
		return p, nil
	}
	caCert, caKey, err := k.authority()
	if err != nil {
		return nil, err
	}
	leaf, err := issue(caCert, caKey, name, time.Now())
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	p.server = &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{leaf},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
	}
	p.client = &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{leaf},
		RootCAs: pool, ServerName: PeerServerName,
	}
	return p, nil
}

// Secure reports whether peers are authenticated (a key was given).
func (p *Peers) Secure() bool { return p.key != nil }

// ServerTLS is the listener's TLS configuration (nil without a key).
func (p *Peers) ServerTLS() *tls.Config {
	if p.server == nil {
		return nil
	}
	return p.server.Clone()
}

// ClientTLS is the dialer's TLS configuration (nil without a key).
func (p *Peers) ClientTLS() *tls.Config {
	if p.client == nil {
		return nil
	}
	return p.client.Clone()
}

// URL is the peer URL of path on addr (https with a key).
func (p *Peers) URL(addr, path string) string {
	if p.Secure() {
		return "https://" + addr + path
	}
	return "http://" + addr + path
}

// Transport sets base up to dial peers (TLS with a key) and returns it.
func (p *Peers) Transport(base *http.Transport) *http.Transport {
	base.TLSClientConfig = p.ClientTLS()
	return base
}

// CheckAddr refuses a peer listen address that is not loopback when there
// is no key: unauthenticated peer traffic must not leave the machine.
func (p *Peers) CheckAddr(addr string) error {
	if p.Secure() {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("auth: peer address %q: %w", addr, err)
	}
	if !isLoopback(host) {
		return fmt.Errorf("auth: peer address %s is not loopback: give the members a --cluster-key to serve peers beyond this machine", addr)
	}
	return nil
}

// StartLine is the one line a node logs about its peer security.
func (p *Peers) StartLine() string {
	if p.Secure() {
		return "peers: mutual TLS under the cluster key (CA " + p.key.fingerprint() + ")"
	}
	return "peers: NO cluster key — unauthenticated, loopback only (demo mode; see docs/security.md)"
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// authority derives the cluster CA: the same certificate on every member.
func (k *Key) authority() (*x509.Certificate, ed25519.PrivateKey, error) {
	priv := ed25519.NewKeyFromSeed(k.derive("peer-ca/v1", ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "scalelab cluster " + fingerprintOf(pub)},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: cluster CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, priv, err
}

func (k *Key) fingerprint() string {
	priv := ed25519.NewKeyFromSeed(k.derive("peer-ca/v1", ed25519.SeedSize))
	return fingerprintOf(priv.Public().(ed25519.PublicKey))
}

func fingerprintOf(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// issue makes a fresh leaf certificate for name signed by the CA.
func issue(ca *x509.Certificate, caKey ed25519.PrivateKey, name string, now time.Time) (tls.Certificate, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{PeerServerName},
		NotBefore:    now.Add(-time.Hour), // clocks of members differ a little
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("auth: peer certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}
