package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HTTPTarget describes the requests of an HTTP run. The URL's path and
// query, and the body, are templates (see Template).
type HTTPTarget struct {
	URL      string
	Method   string   // default GET
	Headers  []string // "Name: value"
	Body     string   // template
	Insecure bool     // skip TLS certificate checks
	// Values are what {{value}} renders, entry seq mod len(Values): IDs
	// created before the run (carts to check out, users to log in).
	Values []string
}

// httpPlan is an HTTPTarget compiled for sending: the request bytes are
// built once when nothing varies, and a template fills only what does.
type httpPlan struct {
	addr       string // host:port to dial
	tlsConfig  *tls.Config
	head       bool
	pathTpl    Template
	bodyTpl    Template
	prefix     []byte   // "METHOD "
	headers    Template // " HTTP/1.1\r\nHost: …\r\n…" up to the Content-Length line
	hasBody    bool
	static     []byte // the whole request, when path and body are static
	display    string
	remoteHost string
}

func compileHTTP(t HTTPTarget) (*httpPlan, error) {
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("bad URL %q: want http://host[:port]/path or https://…", t.URL)
	}
	method := strings.ToUpper(t.Method)
	if method == "" {
		method = "GET"
	}
	for _, c := range method {
		if c < 'A' || c > 'Z' {
			return nil, fmt.Errorf("bad method %q", t.Method)
		}
	}
	p := &httpPlan{head: method == "HEAD", display: method + " " + t.URL, remoteHost: u.Hostname()}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	p.addr = net.JoinHostPort(u.Hostname(), port)
	if u.Scheme == "https" {
		p.tlsConfig = &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: t.Insecure, NextProtos: []string{"http/1.1"}}
	}
	target := u.EscapedPath()
	if target == "" {
		target = "/"
	}
	if u.RawQuery != "" {
		target += "?" + u.RawQuery
	}
	target = unescapePlaceholders(target)
	if p.pathTpl, err = ParseTemplate(target); err != nil {
		return nil, fmt.Errorf("URL path: %w", err)
	}
	if p.bodyTpl, err = ParseTemplate(t.Body); err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	p.hasBody = t.Body != "" || method == "POST" || method == "PUT" || method == "PATCH"
	var h bytes.Buffer
	h.WriteString(" HTTP/1.1\r\nHost: " + u.Host + "\r\n")
	seen := map[string]bool{}
	for _, hv := range t.Headers {
		name, value, ok := strings.Cut(hv, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(value, "\r\n") {
			return nil, fmt.Errorf("bad header %q: want \"Name: value\"", hv)
		}
		lower := strings.ToLower(name)
		if lower == "host" || lower == "content-length" || lower == "transfer-encoding" {
			return nil, fmt.Errorf("header %q is set by the load generator", name)
		}
		seen[lower] = true
		h.WriteString(name + ": " + strings.TrimSpace(value) + "\r\n")
	}
	if !seen["user-agent"] {
		h.WriteString("User-Agent: scalelab-load\r\n")
	}
	p.prefix = []byte(method + " ")
	if p.headers, err = ParseTemplate(h.String()); err != nil {
		return nil, fmt.Errorf("headers: %w", err)
	}
	for _, tpl := range []*Template{&p.pathTpl, &p.bodyTpl, &p.headers} {
		if tpl.usesValues() && len(t.Values) == 0 {
			return nil, fmt.Errorf("{{value}} needs Values")
		}
		*tpl = tpl.withValues(t.Values)
	}
	if p.pathTpl.Static() && p.bodyTpl.Static() && p.headers.Static() {
		p.static = p.appendRequest(nil, 0, nil)
	}
	return p, nil
}

// appendRequest renders request seq.
func (p *httpPlan) appendRequest(dst []byte, seq uint64, rng *rand.Rand) []byte {
	dst = append(dst, p.prefix...)
	dst = p.pathTpl.AppendTo(dst, seq, rng)
	dst = p.headers.AppendTo(dst, seq, rng)
	if p.hasBody {
		bodyStart := len(dst)
		dst = p.bodyTpl.AppendTo(dst, seq, rng)
		body := append([]byte(nil), dst[bodyStart:]...)
		dst = dst[:bodyStart]
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(body)), 10)
		dst = append(dst, "\r\n\r\n"...)
		return append(dst, body...)
	}
	return append(dst, "\r\n"...)
}

// httpConn is one keep-alive connection, used by one worker at a time.
type httpConn struct {
	plan    *httpPlan
	timeout time.Duration
	conn    net.Conn
	br      *bufio.Reader
	buf     []byte
	reused  bool
}

func newHTTPConn(p *httpPlan, timeout time.Duration) *httpConn {
	return &httpConn{plan: p, timeout: timeout}
}

func (c *httpConn) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: c.timeout}
	conn, err := d.DialContext(ctx, "tcp", c.plan.addr)
	if err != nil {
		return err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if c.plan.tlsConfig != nil {
		tconn := tls.Client(conn, c.plan.tlsConfig)
		_ = tconn.SetDeadline(time.Now().Add(c.timeout))
		if err := tconn.HandshakeContext(ctx); err != nil {
			conn.Close()
			return err
		}
		conn = tconn
	}
	c.conn, c.reused = conn, false
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 16<<10)
	} else {
		c.br.Reset(conn)
	}
	return nil
}

func (c *httpConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// do sends request seq and reads the whole response. It returns the status
// and the bytes read. A reused connection that the server had closed is
// redialled once, before anything was read, as browsers and net/http do.
func (c *httpConn) do(ctx context.Context, seq uint64, rng *rand.Rand) (int, int64, error) {
	req := c.plan.static
	if req == nil {
		c.buf = c.plan.appendRequest(c.buf[:0], seq, rng)
		req = c.buf
	}
	for attempt := 0; ; attempt++ {
		if c.conn == nil {
			if err := c.dial(ctx); err != nil {
				return 0, 0, err
			}
		}
		reused := c.reused
		status, n, err := c.roundTrip(req)
		if err == nil {
			c.reused = true
			return status, n, nil
		}
		if errors.Is(err, errConnDone) {
			c.close()
			return status, n, nil
		}
		c.close()
		if reused && n == 0 && attempt == 0 && classify(err) == ErrClosed {
			continue
		}
		return status, n, err
	}
}

func (c *httpConn) roundTrip(req []byte) (int, int64, error) {
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, 0, err
	}
	if _, err := c.conn.Write(req); err != nil {
		return 0, 0, err
	}
	return readResponse(c.br, c.plan.head)
}

// readResponse reads one HTTP/1.1 response and discards its body, returning
// the status and the bytes read. When the server will close the connection
// after this response, the error is errConnDone, so the caller redials.
func readResponse(br *bufio.Reader, head bool) (int, int64, error) {
	line, err := br.ReadSlice('\n')
	n := int64(len(line))
	if err != nil {
		return 0, n, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, n, fmt.Errorf("%w: status line %q", errProtocol, truncate(line))
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 || status > 999 {
		return 0, n, fmt.Errorf("%w: status line %q", errProtocol, truncate(line))
	}
	contentLength, chunked, closeAfter := int64(-1), false, bytes.HasPrefix(line, []byte("HTTP/1.0"))
	for {
		h, err := br.ReadSlice('\n')
		n += int64(len(h))
		if err != nil {
			return status, n, err
		}
		if len(h) <= 2 { // the blank line
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return status, n, fmt.Errorf("%w: header %q", errProtocol, truncate(h))
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			v, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || v < 0 {
				return status, n, fmt.Errorf("%w: Content-Length %q", errProtocol, value)
			}
			contentLength = v
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.Contains(bytes.ToLower(value), []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closeAfter = bytes.EqualFold(value, []byte("close"))
		}
	}
	if status >= 100 && status < 200 && status != 101 {
		s, m, err := readResponse(br, head) // an interim response: the real one follows
		return s, n + m, err
	}
	switch {
	case head || status == 204 || status == 304:
	case chunked:
		m, err := discardChunked(br)
		n += m
		if err != nil {
			return status, n, err
		}
	case contentLength >= 0:
		m, err := br.Discard(int(contentLength))
		n += int64(m)
		if err != nil {
			return status, n, err
		}
	default: // the body runs to the end of the connection
		m, err := io.Copy(io.Discard, br)
		n += m
		if err != nil {
			return status, n, err
		}
		return status, n, errConnDone
	}
	if closeAfter {
		return status, n, errConnDone
	}
	return status, n, nil
}

// errConnDone is not a failure: the response is complete and the server
// closes the connection, so the next request needs a new one.
var errConnDone = errors.New("loadgen: connection closed by server after the response")

func discardChunked(br *bufio.Reader) (int64, error) {
	var n int64
	for {
		line, err := br.ReadSlice('\n')
		n += int64(len(line))
		if err != nil {
			return n, err
		}
		sizeField, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
		size, err := strconv.ParseInt(string(sizeField), 16, 64)
		if err != nil || size < 0 {
			return n, fmt.Errorf("%w: chunk size %q", errProtocol, truncate(line))
		}
		if size == 0 { // trailers until a blank line
			for {
				t, err := br.ReadSlice('\n')
				n += int64(len(t))
				if err != nil {
					return n, err
				}
				if len(t) <= 2 {
					return n, nil
				}
			}
		}
		m, err := br.Discard(int(size) + 2)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

func insecureClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

// unescapePlaceholders undoes the URL escaping of template placeholders:
// url.URL escapes "{{rand 1 9}}" in a path as %7B%7Brand%201%209%7D%7D.
// Spaces are unescaped only inside placeholders; a %20 elsewhere stays, as
// a space would break the request line.
func unescapePlaceholders(target string) string {
	target = strings.NewReplacer("%7B", "{", "%7D", "}", "%7b", "{", "%7d", "}").Replace(target)
	var b strings.Builder
	for {
		i := strings.Index(target, "{{")
		if i < 0 {
			break
		}
		j := strings.Index(target[i:], "}}")
		if j < 0 {
			break
		}
		b.WriteString(target[:i])
		b.WriteString(strings.ReplaceAll(target[i:i+j+2], "%20", " "))
		target = target[i+j+2:]
	}
	b.WriteString(target)
	return b.String()
}
