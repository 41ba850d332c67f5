package chat

import (
	"encoding/json"
	"strings"
	"testing"
)

// The fast paths must agree with encoding/json on every input: these
// differential tests are what allows them on the message path.

func TestParseInboundFastTakesClientFrames(t *testing.T) {
	for _, f := range []string{
		frame("1", "abc", "hi", "2026-11-21T10:00:00Z", "TEXT"),
		frame("100000", "User42", strings.Repeat("é", 500), "2026-11-21T10:00:00+05:30", "JOIN"),
		" {\n\t\"messageType\" : \"LEAVE\" , \"timestamp\":\"x\",\"message\":\"\",\"username\":\"\",\"userId\":\"\"}\r\n",
	} {
		if _, ok := parseInboundFast([]byte(f)); !ok {
			t.Errorf("fast path refused %s", f)
		}
	}
	for _, f := range []string{
		`{}`, `{"userId":"1"`, `{"userId":"1",}`, `{"userId":1}`, `{"userId":null}`,
		`{"userId":"1","userId":"2"}`, `{"USERID":"1"}`, `{"x":"1"}`, `{"message":"a\"b"}`,
		`{"message":"a` + "\x01" + `"}`, `{"message":"` + "\xff" + `"}`, `{"userId":"1"} {}`, `{"userId":"1"}}`,
	} {
		if _, ok := parseInboundFast([]byte(f)); ok {
			t.Errorf("fast path took %s", f)
		}
	}
}

func FuzzParseInboundFast(f *testing.F) {
	f.Add([]byte(frame("1", "abc", "hi", "2026-11-21T10:00:00Z", "TEXT")))
	f.Add([]byte(` {"userId" : "7", "message":"a<b>&c é"} `))
	f.Add([]byte(`{"userId":"1","userId":"2"}`))
	f.Add([]byte(`{"Message":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := parseInboundFast(data)
		if !ok {
			return
		}
		var slow Inbound
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&slow); err != nil || dec.More() {
			t.Fatalf("fast path accepted %q, encoding/json did not: %v", data, err)
		}
		if fast != slow {
			t.Fatalf("%q: fast %+v, encoding/json %+v", data, fast, slow)
		}
	})
}

func FuzzAppendOutbound(f *testing.F) {
	f.Add("123", "hi", "abc")
	f.Add("1", "<script>&amp;\"\\\n\u2028", "é\xff")
	f.Fuzz(func(t *testing.T, id, message, username string) {
		m := &Outbound{MessageID: id, RoomID: "7", UserID: "1", Username: username, Message: message,
			Timestamp: "2026-11-21T10:00:00Z", ServerTimestamp: "2026-11-21T10:00:00.001Z", MessageType: TypeText}
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendOutbound(nil, m); string(got) != string(want) {
			t.Fatalf("appendOutbound %s, encoding/json %s", got, want)
		}
	})
}

func FuzzParseOutboundFast(f *testing.F) {
	m := &Outbound{MessageID: "123", RoomID: "7", UserID: "1", Username: "abc", Message: "hi é",
		Timestamp: "2026-11-21T10:00:00Z", ServerTimestamp: "2026-11-21T10:00:00.001Z", MessageType: TypeText}
	f.Add(appendOutbound(nil, m))
	f.Add([]byte(`{"messageId":"1","messageId":"2"}`))
	f.Add([]byte(`{"MessageId":"1"}`))
	f.Add([]byte(`{"message":"a\nb"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := parseOutboundFast(data)
		if !ok {
			return
		}
		var slow Outbound
		if err := json.Unmarshal(data, &slow); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json did not: %v", data, err)
		}
		if fast != slow {
			t.Fatalf("%q: fast %+v, encoding/json %+v", data, fast, slow)
		}
	})
}

// What servers put on the wire, the persister's fast path reads back.
func TestParseOutboundFastReadsWhatServersWrite(t *testing.T) {
	m := Outbound{MessageID: "3165208110592000", RoomID: "20", UserID: "100000", Username: "User42",
		Message: strings.Repeat("é", 500), Timestamp: "2026-11-21T10:00:00+05:30",
		ServerTimestamp: "2026-11-21T10:00:00.125Z", MessageType: TypeLeave}
	got, ok := parseOutboundFast(appendOutbound(nil, &m))
	if !ok || got != m {
		t.Fatalf("ok %v, got %+v", ok, got)
	}
}

func FuzzParseReplyFast(f *testing.F) {
	f.Add(okFrame("3165208110592000", "2026-11-21T10:00:00.125Z"))
	f.Add([]byte(`{"status":"ERROR","error":"message: required"}`))
	f.Add([]byte(`{"status":"OK","status":"ERROR"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := parseReplyFast(data)
		if !ok {
			return
		}
		var slow Reply
		if err := json.Unmarshal(data, &slow); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json did not: %v", data, err)
		}
		if fast != slow {
			t.Fatalf("%q: fast %+v, encoding/json %+v", data, fast, slow)
		}
	})
}

// What servers reply, the load generator reads: OK replies by the fast
// path, errors (escaped text) by either.
func TestParseReplyReadsWhatServersWrite(t *testing.T) {
	if r, ok := parseReplyFast(okFrame("42", "2026-11-21T10:00:00Z")); !ok || r.Status != "OK" || r.MessageID != "42" {
		t.Fatalf("OK reply: %v %+v", ok, r)
	}
	frame, _ := json.Marshal(Reply{Status: "ERROR", Error: `message: "quoted" and <b>`})
	if r, ok := parseReply(frame); !ok || r.Status != "ERROR" || r.Error != `message: "quoted" and <b>` {
		t.Fatalf("error reply: %v %+v", ok, r)
	}
	if _, ok := parseReply([]byte(`{"roomId":"1"}`)); ok {
		t.Fatal("a room message read as a reply")
	}
}
