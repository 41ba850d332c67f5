package testweb

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// InternalName resolves to 127.0.0.1, outside the web's addresses: the
// hazards page links to it, and a crawler with an SSRF guard must refuse
// to fetch it.
const InternalName = "internal.test"

// DNS is the web's name server: A records for its hosts (and
// InternalName) over UDP, NXDOMAIN for every other name. A crawler
// resolves the web's names through it the way it resolves any name.
type DNS struct {
	srv  *dns.Server
	addr string
}

// ServeDNS starts the name server on addr (host:port; port 0 picks one).
func (s *Server) ServeDNS(addr string) (*DNS, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("testweb: dns: %w", err)
	}
	started := make(chan struct{})
	d := &DNS{addr: pc.LocalAddr().String()}
	d.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.answerDNS), NotifyStartedFunc: func() { close(started) }}
	go func() { _ = d.srv.ActivateAndServe() }()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		_ = pc.Close()
		return nil, fmt.Errorf("testweb: dns on %s did not start", d.addr)
	}
	return d, nil
}

// Addr is where the name server listens.
func (d *DNS) Addr() string { return d.addr }

// Close stops the name server.
func (d *DNS) Close() { _ = d.srv.Shutdown() }

func (s *Server) answerDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	for _, q := range req.Question {
		name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
		var ip net.IP
		if name == InternalName {
			ip = net.IPv4(127, 0, 0, 1)
		} else if a, ok := s.Resolve(name); ok {
			ip = net.IP(a.AsSlice())
		}
		switch {
		case ip == nil:
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: ip})
		}
	}
	_ = w.WriteMsg(m)
}
