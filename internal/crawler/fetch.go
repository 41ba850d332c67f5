package crawler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// FetchConfig bounds one fetch.
type FetchConfig struct {
	Timeout time.Duration // the whole fetch, head and body
	MaxBody int64         // bytes kept; a longer body is cut here and marked truncated
}

// Fetcher gets one URL without following redirects: a redirect is a new
// URL for the frontier, which applies robots, politeness and the URL-seen
// test to it like to any link (a redirect followed inside the client
// would fetch another host, or the same host again, behind the frontier's
// back).
type Fetcher struct {
	cfg    FetchConfig
	client *http.Client
}

// NewFetcher fetches through dialer (the DNS cache and the SSRF guard).
func NewFetcher(cfg FetchConfig, dialer *Dialer) *Fetcher {
	tr := &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1,
		IdleConnTimeout: 30 * time.Second, ResponseHeaderTimeout: cfg.Timeout, DisableCompression: false}
	return &Fetcher{cfg: cfg, client: &http.Client{Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Response is what one fetch brought back.
type Response struct {
	Status      int
	ContentType string
	Location    string // a redirect's target, as sent
	Body        []byte
	Truncated   bool
	Duration    time.Duration
}

// Get fetches url. An error is a fetch that got no answer (DNS, a refused
// or forbidden address, a timeout before the head).
func (f *Fetcher) Get(ctx context.Context, url string) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", Agent)
	req.Header.Set("Accept", "text/html,text/plain;q=0.9,*/*;q=0.1")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("crawler: get %s: %w", url, err)
	}
	defer resp.Body.Close()
	out := &Response{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Location: resp.Header.Get("Location")}
	if strings.HasPrefix(strings.ToLower(out.ContentType), "text/") || out.ContentType == "" {
		body, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBody+1))
		if int64(len(body)) > f.cfg.MaxBody {
			body, out.Truncated = body[:f.cfg.MaxBody], true
		} else if err != nil {
			// A body cut by the timeout: what arrived is kept, marked.
			out.Truncated = errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil
			if !out.Truncated {
				return nil, fmt.Errorf("crawler: read %s: %w", url, err)
			}
		}
		out.Body = body
	}
	out.Duration = time.Since(start)
	return out, nil
}

// CloseIdle closes kept-alive connections.
func (f *Fetcher) CloseIdle() { f.client.CloseIdleConnections() }
