package chat

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func frame(userID, username, message, ts, typ string) string {
	return `{"userId":"` + userID + `","username":"` + username + `","message":"` + message +
		`","timestamp":"` + ts + `","messageType":"` + typ + `"}`
}

func TestParseInbound(t *testing.T) {
	const ts = "2026-11-21T10:00:00.123Z"
	long := strings.Repeat("é", MaxMessage) // 500 characters, 1000 bytes
	cases := []struct {
		name, frame, wantErr string
	}{
		{"valid", frame("1", "abc", "hi", ts, "TEXT"), ""},
		{"max values", frame("100000", strings.Repeat("Z", 20), long, "2026-11-21T10:00:00+05:30", "LEAVE"), ""},
		{"join", frame("42", "user42", "joined", ts, "JOIN"), ""},
		{"not json", `hello`, "invalid JSON"},
		{"array", `[1,2]`, "must be a JSON object"},
		{"two values", frame("1", "abc", "hi", ts, "TEXT") + ` {}`, "more than one value"},
		{"unknown field", `{"userId":"1","username":"abc","message":"hi","timestamp":"` + ts + `","messageType":"TEXT","x":1}`, `unknown field "x"`},
		{"numeric userId", `{"userId":1,"username":"abc","message":"hi","timestamp":"` + ts + `","messageType":"TEXT"}`, `field "userId" must be a string`},
		{"missing userId", `{"username":"abc","message":"hi","timestamp":"` + ts + `","messageType":"TEXT"}`, "userId: required"},
		{"userId zero", frame("0", "abc", "hi", ts, "TEXT"), "userId: must be a number from 1 to 100000"},
		{"userId too big", frame("100001", "abc", "hi", ts, "TEXT"), "userId"},
		{"userId leading zero", frame("01", "abc", "hi", ts, "TEXT"), "userId"},
		{"userId plus", frame("+1", "abc", "hi", ts, "TEXT"), "userId"},
		{"userId negative", frame("-1", "abc", "hi", ts, "TEXT"), "userId"},
		{"username short", frame("1", "ab", "hi", ts, "TEXT"), "username: must be 3–20"},
		{"username long", frame("1", strings.Repeat("a", 21), "hi", ts, "TEXT"), "username"},
		{"username symbol", frame("1", "ab_c", "hi", ts, "TEXT"), "username"},
		{"username unicode", frame("1", "abcé", "hi", ts, "TEXT"), "username"},
		{"empty message", frame("1", "abc", "", ts, "TEXT"), "message: must be 1–500 characters, got 0"},
		{"message too long", frame("1", "abc", long+"x", ts, "TEXT"), "got 501"},
		{"missing timestamp", frame("1", "abc", "hi", "", "TEXT"), "timestamp: required"},
		{"bad timestamp", frame("1", "abc", "hi", "yesterday", "TEXT"), "timestamp: \"yesterday\" is not ISO-8601"},
		{"timestamp without zone", frame("1", "abc", "hi", "2026-11-21T10:00:00", "TEXT"), "timestamp"},
		{"missing type", frame("1", "abc", "hi", ts, ""), "messageType: required"},
		{"bad type", frame("1", "abc", "hi", ts, "text"), "messageType: must be TEXT, JOIN or LEAVE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseInbound([]byte(c.frame))
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.wantErr != "" && err == nil:
				t.Fatalf("accepted, want error containing %q", c.wantErr)
			case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
				t.Fatalf("error %q does not contain %q", err, c.wantErr)
			}
		})
	}
}

func TestParseRoom(t *testing.T) {
	for _, s := range []string{"1", "7", "20"} {
		if _, err := ParseRoom(s, 20); err != nil {
			t.Errorf("room %s: %v", s, err)
		}
	}
	for _, s := range []string{"0", "21", "01", "-1", "x", "", "+3", "99999999999999999999"} {
		if _, err := ParseRoom(s, 20); err == nil {
			t.Errorf("room %q accepted", s)
		}
	}
}

func TestWireEnvelope(t *testing.T) {
	var env []byte
	for i, room := range []string{"7", "1", "20"} {
		m := &Outbound{MessageID: strconv.Itoa(100 + i), RoomID: room, UserID: "1", Username: "abc", Message: "hi\nthere",
			Timestamp: "2026-11-21T10:00:00Z", ServerTimestamp: "2026-11-21T10:00:00.001Z", MessageType: TypeText}
		env = AppendEnvelope(env, EncodeWire(nil, m))
	}
	if n := CountWire(env); n != 3 {
		t.Fatalf("CountWire = %d, want 3", n)
	}
	var rooms []int
	for rest := env; len(rest) > 0; {
		room, body, next, err := NextWire(rest)
		if err != nil {
			t.Fatalf("entry %d: %v", len(rooms), err)
		}
		var m Outbound
		if err := json.Unmarshal(body, &m); err != nil || m.Message != "hi\nthere" || m.RoomID != strconv.Itoa(room) {
			t.Fatalf("entry %d: %s (%v)", len(rooms), body, err)
		}
		rooms = append(rooms, room)
		rest = next
	}
	if fmt.Sprint(rooms) != "[7 1 20]" {
		t.Fatalf("rooms %v", rooms)
	}

	// What servers published before envelopes: one entry, no final newline.
	old := EncodeWire(nil, &Outbound{MessageID: "1", RoomID: "3", UserID: "1", Username: "abc", Message: "x",
		Timestamp: "2026-11-21T10:00:00Z", ServerTimestamp: "2026-11-21T10:00:00.001Z", MessageType: TypeText})
	room, body, rest, err := NextWire(old)
	if err != nil || room != 3 || len(rest) != 0 || !strings.HasPrefix(string(body), `{"messageId":"1","roomId":"3"`) {
		t.Fatalf("old format: room %d body %s rest %q err %v", room, body, rest, err)
	}
	if CountWire(old) != 1 {
		t.Fatalf("CountWire(old) = %d", CountWire(old))
	}

	for _, bad := range []string{"", "{}", "\n{}", "x\n{}", "0\n{}", "1234567\n{}", "7\n", "7\n\n"} {
		if _, _, _, err := NextWire([]byte(bad)); err == nil {
			t.Errorf("NextWire(%q) accepted", bad)
		}
	}
}

// Whatever a client sends, parsing returns an error or a message that
// passes validation: never a panic.
func FuzzParseInbound(f *testing.F) {
	f.Add([]byte(frame("1", "abc", "hi", "2026-11-21T10:00:00Z", "TEXT")))
	f.Add([]byte(`{"userId":null}`))
	f.Add([]byte(`"\ud800"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := ParseInbound(data)
		if err == nil {
			if verr := in.Validate(); verr != nil {
				t.Fatalf("accepted an invalid message: %v", verr)
			}
		} else if err.Error() == "" {
			t.Fatal("empty error")
		}
	})
}
