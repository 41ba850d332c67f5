// Package client is a Go client for the Raft key-value store. It finds the
// leader (any node serves any request, but the leader saves a hop), and
// retries on another node when one does not answer — without ever applying
// a write twice: each write carries the client's ID and a request number
// (X-Client-ID, X-Request-Seq) that stays the same across retries, and the
// state machine answers a retry from its session table instead of
// applying it again. The table keeps one number per client, so a Client
// sends one write at a time (concurrent calls queue); use several Clients
// for concurrent writes.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/resilience"
)

// Client talks to a cluster through any of its nodes.
type Client struct {
	endpoints []string
	http      *http.Client
	id        uint64
	writeMu   sync.Mutex // one write in flight: numbers must reach the log in order
	mu        sync.Mutex
	seq       uint64
	preferred int
}

// New returns a client for the nodes at endpoints (http://host:port).
func New(endpoints ...string) *Client {
	var b [8]byte
	_, _ = rand.Read(b[:])
	c := &Client{http: &http.Client{Timeout: 10 * time.Second}, id: binary.BigEndian.Uint64(b[:])>>1 | 1}
	for _, e := range endpoints {
		c.endpoints = append(c.endpoints, strings.TrimRight(e, "/"))
	}
	return c
}

// ConflictError is a compare-and-set whose revision did not match.
type ConflictError struct{ Current int64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("raftkv: revision mismatch (current %d)", e.Current)
}

// ErrNotFound is a read of an absent key.
var ErrNotFound = errors.New("raftkv: key not found")

// Discover asks the nodes who leads and prefers that node from now on.
func (c *Client) Discover(ctx context.Context) error {
	ids := map[uint64]int{}
	var leader uint64
	for i, e := range c.endpoints {
		var info struct{ ID, Leader uint64 }
		if err := c.getJSON(ctx, e+"/v1/cluster", &info); err != nil {
			continue
		}
		ids[info.ID] = i
		if info.Leader != 0 {
			leader = info.Leader
		}
	}
	i, ok := ids[leader]
	if !ok {
		return fmt.Errorf("raftkv: no node knows a leader")
	}
	c.mu.Lock()
	c.preferred = i
	c.mu.Unlock()
	return nil
}

func (c *Client) getJSON(ctx context.Context, u string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// do sends a request to the preferred node, then the others in turn,
// until one answers with something other than 503, or ctx ends.
func (c *Client) do(ctx context.Context, method, path string, body []byte, hdr http.Header) (*http.Response, []byte, error) {
	c.mu.Lock()
	start := c.preferred
	c.mu.Unlock()
	var last error
	for attempt := 0; ; attempt++ {
		i := (start + attempt) % len(c.endpoints)
		req, err := http.NewRequestWithContext(ctx, method, c.endpoints[i]+path, bytes.NewReader(body))
		if err != nil {
			return nil, nil, err
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := c.http.Do(req)
		if err == nil {
			raw, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode != http.StatusServiceUnavailable {
				c.mu.Lock()
				c.preferred = i
				c.mu.Unlock()
				return resp, raw, nil
			}
			last = fmt.Errorf("%s: %d %s", c.endpoints[i], resp.StatusCode, strings.TrimSpace(string(raw)))
		} else {
			last = err
		}
		// After a full round of the endpoints, a pause (an election takes
		// about a second); a context that ends cuts it short.
		if ctx.Err() != nil || attempt%len(c.endpoints) == len(c.endpoints)-1 && !resilience.Sleep(ctx, 100*time.Millisecond) {
			return nil, nil, fmt.Errorf("raftkv: %w (last: %v)", ctx.Err(), last)
		}
	}
}

func (c *Client) write(ctx context.Context, method, key string, value []byte, ifRevision *int64) (int64, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.mu.Lock()
	c.seq++
	seq := c.seq
	c.mu.Unlock()
	path := "/v1/kv/" + url.PathEscape(key)
	if ifRevision != nil {
		path += "?if_revision=" + strconv.FormatInt(*ifRevision, 10)
	}
	hdr := http.Header{"X-Client-Id": {strconv.FormatUint(c.id, 10)}, "X-Request-Seq": {strconv.FormatUint(seq, 10)}}
	resp, raw, err := c.do(ctx, method, path, value, hdr)
	if err != nil {
		return 0, err
	}
	var body struct {
		Revision int64  `json:"revision"`
		Error    string `json:"error"`
	}
	_ = json.Unmarshal(raw, &body)
	switch resp.StatusCode {
	case http.StatusOK:
		return body.Revision, nil
	case http.StatusPreconditionFailed:
		return 0, &ConflictError{Current: body.Revision}
	}
	return 0, fmt.Errorf("raftkv: %d %s", resp.StatusCode, body.Error)
}

// Put writes key; with ifRevision set it is a compare-and-set (0: only if
// absent). It returns the store revision of the write.
func (c *Client) Put(ctx context.Context, key string, value []byte, ifRevision *int64) (int64, error) {
	return c.write(ctx, http.MethodPut, key, value, ifRevision)
}

// Delete deletes key (conditionally with ifRevision).
func (c *Client) Delete(ctx context.Context, key string, ifRevision *int64) (int64, error) {
	return c.write(ctx, http.MethodDelete, key, nil, ifRevision)
}

// Get reads key, linearizably unless stale.
func (c *Client) Get(ctx context.Context, key string, stale bool) (value []byte, revision int64, err error) {
	path := "/v1/kv/" + url.PathEscape(key)
	if stale {
		path += "?stale=true"
	}
	resp, raw, err := c.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, 0, ErrNotFound
	}
	var body struct {
		ValueB64 string `json:"value_b64"`
		Revision int64  `json:"revision"`
		Error    string `json:"error"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("raftkv: %d %s", resp.StatusCode, body.Error)
	}
	v, err := base64.StdEncoding.DecodeString(body.ValueB64)
	return v, body.Revision, err
}
