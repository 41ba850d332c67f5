package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of the client protocol.
const (
	MaxUserID      = 100_000
	MinUsername    = 3
	MaxUsername    = 20
	MaxMessage     = 500 // characters (runes), not bytes
	MaxFrame       = 4096
	maxTimestamp   = 64
	timestampParse = time.RFC3339Nano // RFC 3339 is the ISO-8601 profile every client library writes
)

// Message types.
const (
	TypeText  = "TEXT"
	TypeJoin  = "JOIN"
	TypeLeave = "LEAVE"
)

// Inbound is what a client sends.
type Inbound struct {
	UserID      string `json:"userId"`
	Username    string `json:"username"`
	Message     string `json:"message"`
	Timestamp   string `json:"timestamp"`
	MessageType string `json:"messageType"`
}

// Outbound is what every connection in the room receives, and what the
// persister stores.
type Outbound struct {
	MessageID       string `json:"messageId"`
	RoomID          string `json:"roomId"`
	UserID          string `json:"userId"`
	Username        string `json:"username"`
	Message         string `json:"message"`
	Timestamp       string `json:"timestamp"`
	ServerTimestamp string `json:"serverTimestamp"`
	MessageType     string `json:"messageType"`
}

// Reply answers a client's message: OK with the ID, or ERROR with the reason.
type Reply struct {
	Status          string `json:"status"`
	MessageID       string `json:"messageId,omitempty"`
	ServerTimestamp string `json:"serverTimestamp,omitempty"`
	Error           string `json:"error,omitempty"`
}

// ParseInbound decodes and validates one client frame. The error names the
// field and the rule it broke, and is meant for the client as it is.
func ParseInbound(frame []byte) (Inbound, error) {
	if in, ok := parseInboundFast(frame); ok {
		return in, in.Validate()
	}
	return parseInboundJSON(frame)
}

// parseInboundJSON is ParseInbound by encoding/json, for every frame the
// fast path does not take.
func parseInboundJSON(frame []byte) (Inbound, error) {
	var in Inbound
	dec := json.NewDecoder(bytes.NewReader(frame))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, fmt.Errorf("invalid JSON: %s", jsonProblem(err))
	}
	if dec.More() {
		return in, errors.New("invalid JSON: more than one value in the frame")
	}
	return in, in.Validate()
}

// jsonProblem shortens decoder errors to what a client can act on.
func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return "the frame must be a JSON object"
		}
		return fmt.Sprintf("field %q must be a %s, not a %s", typeErr.Field, "string", typeErr.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// Validate checks every field; the first problem is returned.
func (in Inbound) Validate() error {
	if err := validUserID(in.UserID); err != nil {
		return err
	}
	if n := len(in.Username); n < MinUsername || n > MaxUsername || !alphanumeric(in.Username) {
		return fmt.Errorf("username: must be %d–%d letters or digits (A–Z, a–z, 0–9), got %q", MinUsername, MaxUsername, clip(in.Username))
	}
	if !utf8.ValidString(in.Message) {
		return errors.New("message: must be valid UTF-8")
	}
	if strings.ContainsRune(in.Message, 0) {
		return errors.New("message: must not contain NUL (U+0000), which text columns cannot hold")
	}
	if n := utf8.RuneCountInString(in.Message); n < 1 || n > MaxMessage {
		return fmt.Errorf("message: must be 1–%d characters, got %d", MaxMessage, n)
	}
	if in.Timestamp == "" {
		return errors.New("timestamp: required, ISO-8601 (RFC 3339), e.g. 2026-11-21T10:00:00Z")
	}
	if len(in.Timestamp) > maxTimestamp {
		return errors.New("timestamp: too long for an ISO-8601 time")
	}
	if _, err := time.Parse(timestampParse, in.Timestamp); err != nil {
		return fmt.Errorf("timestamp: %q is not ISO-8601 (RFC 3339), e.g. 2026-11-21T10:00:00Z", clip(in.Timestamp))
	}
	switch in.MessageType {
	case TypeText, TypeJoin, TypeLeave:
	case "":
		return errors.New("messageType: required, one of TEXT, JOIN, LEAVE")
	default:
		return fmt.Errorf("messageType: must be TEXT, JOIN or LEAVE, got %q", clip(in.MessageType))
	}
	return nil
}

func validUserID(s string) error {
	if s == "" {
		return fmt.Errorf("userId: required, a string holding a number from 1 to %d", MaxUserID)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxUserID || s[0] == '0' || s[0] == '+' {
		return fmt.Errorf("userId: must be a number from 1 to %d without leading zeros, got %q", MaxUserID, clip(s))
	}
	return nil
}

func alphanumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// clip keeps error messages short whatever the client sent.
func clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	cut := 40
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// ParseRoom reads a room ID from a path: 1..rooms, no leading zeros.
func ParseRoom(s string, rooms int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > rooms || s[0] == '0' || s[0] == '+' {
		return 0, fmt.Errorf("unknown room %q: rooms are 1–%d", clip(s), rooms)
	}
	return n, nil
}

// Wire format on the broker. One entry per chat message: the room ID, a
// newline, then the Outbound JSON exactly as connections receive it. The
// prefix lets a server route a message to its room's connections without
// decoding the JSON, and the JSON is sent on as it is: encoded once, by the
// server that accepted it. A broker message is an envelope of entries, each
// followed by a newline (publish.go); compact JSON never holds a raw
// newline, so the newlines alone delimit the entries. An envelope of one
// entry without its final newline — what servers published before
// envelopes — reads the same.

// EncodeWire appends the wire entry for m to dst.
func EncodeWire(dst []byte, m *Outbound) []byte {
	dst = append(dst, m.RoomID...)
	dst = append(dst, '\n')
	return appendOutbound(dst, m)
}

// AppendEnvelope appends one wire entry to an envelope.
func AppendEnvelope(envelope, entry []byte) []byte {
	envelope = append(envelope, entry...)
	return append(envelope, '\n')
}

// NextWire splits the first entry off an envelope: its room, its Outbound
// JSON, and the entries after it. A malformed entry is an error; nothing
// after it can be trusted to be delimited right.
func NextWire(envelope []byte) (room int, body, rest []byte, err error) {
	i := bytes.IndexByte(envelope, '\n')
	if i <= 0 || i > 6 {
		return 0, nil, nil, errors.New("chat: broker entry without a room prefix")
	}
	room, err = strconv.Atoi(string(envelope[:i]))
	if err != nil || room < 1 {
		return 0, nil, nil, fmt.Errorf("chat: bad room prefix %q", envelope[:i])
	}
	body = envelope[i+1:]
	if j := bytes.IndexByte(body, '\n'); j >= 0 {
		body, rest = body[:j], body[j+1:]
	}
	if len(body) == 0 {
		return 0, nil, nil, errors.New("chat: broker entry without a message")
	}
	return room, body, rest, nil
}

// CountWire is how many entries an envelope holds (for batch sizing; it
// does not check them).
func CountWire(envelope []byte) int {
	n := bytes.Count(envelope, []byte{'\n'}) / 2
	if len(envelope) > 0 && envelope[len(envelope)-1] != '\n' {
		n++ // the last entry has no final newline
	}
	return max(n, 1)
}
