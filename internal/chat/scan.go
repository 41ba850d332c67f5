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

var (
	inboundKeys  = []string{"userId", "username", "message", "timestamp", "messageType"}
	outboundKeys = []string{"messageId", "roomId", "userId", "username", "message", "timestamp", "serverTimestamp", "messageType"}
)

// parseInboundFast decodes a flat JSON object whose members are the five
// Inbound fields, each at most once, each a string without escapes or
// control characters and with valid UTF-8. ok is false for anything else.
func parseInboundFast(b []byte) (in Inbound, ok bool) {
	var v [5]string
	if !scanStringObject(b, inboundKeys, v[:]) {
		return in, false
	}
	return Inbound{UserID: v[0], Username: v[1], Message: v[2], Timestamp: v[3], MessageType: v[4]}, true
}

// parseOutboundFast is parseInboundFast for the eight Outbound fields (the
// persister reads every message this way).
func parseOutboundFast(b []byte) (m Outbound, ok bool) {
	var v [8]string
	if !scanStringObject(b, outboundKeys, v[:]) {
		return m, false
	}
	return Outbound{MessageID: v[0], RoomID: v[1], UserID: v[2], Username: v[3], Message: v[4],
		Timestamp: v[5], ServerTimestamp: v[6], MessageType: v[7]}, true
}

var replyKeys = []string{"status", "messageId", "serverTimestamp", "error"}

// parseReplyFast is parseInboundFast for a Reply (the load generator reads
// every reply this way).
func parseReplyFast(b []byte) (r Reply, ok bool) {
	var v [4]string
	if !scanStringObject(b, replyKeys, v[:]) {
		return r, false
	}
	return Reply{Status: v[0], MessageID: v[1], ServerTimestamp: v[2], Error: v[3]}, true
}

// parseReply reads a server's reply: the fast path, or encoding/json for
// anything it does not take (an error text with escapes).
func parseReply(b []byte) (Reply, bool) {
	if r, ok := parseReplyFast(b); ok {
		return r, true
	}
	var r Reply
	return r, json.Unmarshal(b, &r) == nil && r.Status != ""
}

// scanStringObject reads a flat JSON object whose members are among keys
// (at most 16), each at most once, with plain string values (see
// scanPlainString), into vals[i] for keys[i]; absent keys stay "". The
// values are slices of one copy of b: one allocation per object.
func scanStringObject(b []byte, keys []string, vals []string) bool {
	var at [16][2]int // value bounds in b, per key
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return false
	}
	i++
	var seen uint16
	for {
		key, j, ok := scanPlainString(b, skipSpace(b, i))
		if !ok {
			return false
		}
		i = skipSpace(b, j)
		if i == len(b) || b[i] != ':' {
			return false
		}
		valStart := skipSpace(b, i+1)
		val, j, ok := scanPlainString(b, valStart)
		if !ok {
			return false
		}
		k := 0
		for k < len(keys) && keys[k] != string(key) {
			k++
		}
		if k == len(keys) || seen&(1<<k) != 0 {
			return false
		}
		seen |= 1 << k
		at[k] = [2]int{valStart + 1, valStart + 1 + len(val)}
		i = skipSpace(b, j)
		if i == len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i++
			continue
		case '}':
			if skipSpace(b, i+1) != len(b) {
				return false
			}
			all := string(b)
			for k := range keys {
				if seen&(1<<k) != 0 {
					vals[k] = all[at[k][0]:at[k][1]]
				}
			}
			return true
		default:
			return false
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
