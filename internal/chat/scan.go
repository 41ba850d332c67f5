package chat

import (
	"encoding/json"
	"unicode/utf8"
)

// Hand-written JSON for the two frames on every message's path.
//
// encoding/json was 15 % of the server's CPU under load, mostly reflection
// and allocation for a five-field object of short strings. The fast paths
// here cover exactly the frames real clients send and produce; anything
// else (escapes, numbers, duplicate or differently-cased keys, invalid
// UTF-8) goes to encoding/json, which keeps the final word and words the
// errors. Differential fuzz tests (scan_test.go) check that the fast paths
// never disagree with it.

// parseInboundFast decodes a flat JSON object whose members are the five
// Inbound fields, each at most once, each a string without escapes or
// control characters and with valid UTF-8. ok is false for anything else.
func parseInboundFast(b []byte) (in Inbound, ok bool) {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return in, false
	}
	i++
	var seen uint8
	for {
		key, j, ok := scanPlainString(b, skipSpace(b, i))
		if !ok {
			return in, false
		}
		i = skipSpace(b, j)
		if i == len(b) || b[i] != ':' {
			return in, false
		}
		val, j, ok := scanPlainString(b, skipSpace(b, i+1))
		if !ok {
			return in, false
		}
		var bit uint8
		var dst *string
		switch string(key) {
		case "userId":
			bit, dst = 1, &in.UserID
		case "username":
			bit, dst = 2, &in.Username
		case "message":
			bit, dst = 4, &in.Message
		case "timestamp":
			bit, dst = 8, &in.Timestamp
		case "messageType":
			bit, dst = 16, &in.MessageType
		default:
			return in, false
		}
		if seen&bit != 0 {
			return in, false
		}
		seen |= bit
		*dst = string(val)
		i = skipSpace(b, j)
		if i == len(b) {
			return in, false
		}
		switch b[i] {
		case ',':
			i++
			continue
		case '}':
			return in, skipSpace(b, i+1) == len(b)
		default:
			return in, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanPlainString reads the string starting at b[i] (its opening quote)
// and returns its contents and the index after its closing quote. ok is
// false unless it is a string without escapes and control characters
// whose bytes are valid UTF-8.
func scanPlainString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	ascii := true
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s = b[i+1 : j]
			if !ascii && !utf8.Valid(s) {
				return nil, 0, false
			}
			return s, j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, 0, false
}

// appendOutbound appends m as encoding/json would encode it.
func appendOutbound(dst []byte, m *Outbound) []byte {
	dst = append(dst, `{"messageId":`...)
	dst = appendJSONString(dst, m.MessageID)
	dst = append(dst, `,"roomId":`...)
	dst = appendJSONString(dst, m.RoomID)
	dst = append(dst, `,"userId":`...)
	dst = appendJSONString(dst, m.UserID)
	dst = append(dst, `,"username":`...)
	dst = appendJSONString(dst, m.Username)
	dst = append(dst, `,"message":`...)
	dst = appendJSONString(dst, m.Message)
	dst = append(dst, `,"timestamp":`...)
	dst = appendJSONString(dst, m.Timestamp)
	dst = append(dst, `,"serverTimestamp":`...)
	dst = appendJSONString(dst, m.ServerTimestamp)
	dst = append(dst, `,"messageType":`...)
	dst = appendJSONString(dst, m.MessageType)
	return append(dst, '}')
}

// appendJSONString quotes s as encoding/json does: printable ASCII other
// than the characters it escapes is copied; any other string is left to
// encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			quoted, _ := json.Marshal(s) // a string always encodes
			return append(dst, quoted...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
