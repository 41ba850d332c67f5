// Package client is a Go client for a Dynamo node's HTTP API. It keeps the
// causal context explicit: a read returns the context, and a write that
// should replace what was read passes it back. Any node of the cluster can
// serve any request.
package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ContextHeader carries the causal context.
const ContextHeader = "X-Causal-Context"

// Client talks to one node.
type Client struct {
	Base string // e.g. http://127.0.0.1:7101
	HTTP *http.Client
}

// New returns a client for the node at base.
func New(base string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), HTTP: http.DefaultClient}
}

// Result is a read: no value (not found), one, or siblings.
type Result struct {
	Values  [][]byte
	Context string
}

// Found reports whether the key has a value.
func (r Result) Found() bool { return len(r.Values) > 0 }

// Conflict reports whether the read returned siblings.
func (r Result) Conflict() bool { return len(r.Values) > 1 }

// Error is a refusal from the node, with its JSON message.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("dynamo: %d %s", e.Status, e.Message) }

func (c *Client) url(key string, q string, n int) string {
	u := c.Base + "/kv/" + url.PathEscape(key)
	if n > 0 {
		u += "?" + q + "=" + strconv.Itoa(n)
	}
	return u
}

func (c *Client) do(req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func refusal(resp *http.Response, body []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	if e.Error == "" {
		e.Error = strings.TrimSpace(string(body))
	}
	return &Error{Status: resp.StatusCode, Message: e.Error}
}

// Get reads key with r replicas (0: the node's default).
func (c *Client) Get(ctx context.Context, key string, r int) (Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(key, "r", r), nil)
	if err != nil {
		return Result{}, err
	}
	resp, body, err := c.do(req)
	if err != nil {
		return Result{}, err
	}
	res := Result{Context: resp.Header.Get(ContextHeader)}
	switch resp.StatusCode {
	case http.StatusOK:
		res.Values = [][]byte{body}
	case http.StatusNotFound:
	case http.StatusMultipleChoices:
		var s struct {
			Siblings []string `json:"siblings"`
			Context  string   `json:"context"`
		}
		if err := json.Unmarshal(body, &s); err != nil {
			return Result{}, fmt.Errorf("dynamo: bad siblings body: %w", err)
		}
		for _, b := range s.Siblings {
			v, err := base64.StdEncoding.DecodeString(b)
			if err != nil {
				return Result{}, fmt.Errorf("dynamo: bad sibling: %w", err)
			}
			res.Values = append(res.Values, v)
		}
		res.Context = s.Context
	default:
		return Result{}, refusal(resp, body)
	}
	return res, nil
}

// Put writes value; causal is the context of the read it replaces ("" for
// a blind write, which becomes a sibling of whatever is there). It returns
// the new version's context.
func (c *Client) Put(ctx context.Context, key string, value []byte, causal string, w int) (string, error) {
	return c.write(ctx, http.MethodPut, key, value, causal, w)
}

// Delete deletes what causal covers.
func (c *Client) Delete(ctx context.Context, key, causal string, w int) (string, error) {
	return c.write(ctx, http.MethodDelete, key, nil, causal, w)
}

func (c *Client) write(ctx context.Context, method, key string, value []byte, causal string, w int) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(key, "w", w), bytes.NewReader(value))
	if err != nil {
		return "", err
	}
	if causal != "" {
		req.Header.Set(ContextHeader, causal)
	}
	resp, body, err := c.do(req)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusNoContent {
		return "", refusal(resp, body)
	}
	return resp.Header.Get(ContextHeader), nil
}

// Cluster returns the node's GET /cluster document.
func (c *Client) Cluster(ctx context.Context) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+"/cluster", nil)
	if err != nil {
		return nil, err
	}
	resp, body, err := c.do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, refusal(resp, body)
	}
	return body, nil
}
