package chat

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/coder/websocket"
)

// Frame is anything a server sends: a reply to this connection's message
// (Status set) or a room message (MessageID and RoomID set).
type Frame struct {
	Status          string `json:"status"`
	Error           string `json:"error"`
	MessageID       string `json:"messageId"`
	ServerTimestamp string `json:"serverTimestamp"`
	RoomID          string `json:"roomId"`
	UserID          string `json:"userId"`
	Username        string `json:"username"`
	Message         string `json:"message"`
	Timestamp       string `json:"timestamp"`
	MessageType     string `json:"messageType"`
}

// IsReply reports whether the frame answers one of our messages.
func (f *Frame) IsReply() bool { return f.Status != "" }

// Client is a minimal chat client (tests, the load generator, examples).
// Send and Read may be used from two goroutines, one each.
type Client struct {
	ws *websocket.Conn
}

// Dial connects to ws://host/chat/{room}.
func Dial(ctx context.Context, url string) (*Client, error) {
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("chat: dial %s: %w", url, err)
	}
	ws.SetReadLimit(1 << 20)
	return &Client{ws: ws}, nil
}

// Send writes one message.
func (c *Client) Send(ctx context.Context, in *Inbound) error {
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.SendRaw(ctx, data)
}

// SendRaw writes one text frame as it is (tests send malformed ones).
func (c *Client) SendRaw(ctx context.Context, data []byte) error {
	return c.ws.Write(ctx, websocket.MessageText, data)
}

// Read returns the next frame.
func (c *Client) Read(ctx context.Context) (*Frame, error) {
	_, data, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	var f Frame
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("chat: server sent a frame that is not JSON: %q", data)
	}
	return &f, nil
}

// Conn is the underlying WebSocket (for close codes and binary frames).
func (c *Client) Conn() *websocket.Conn { return c.ws }

// Close closes the connection normally.
func (c *Client) Close() error { return c.ws.Close(websocket.StatusNormalClosure, "bye") }
