package auth

import (
	"bytes"
	"testing"
)

func TestDatagramsOpenOnlyUnderTheirKey(t *testing.T) {
	k, _ := ParseKey(NewKeyText())
	other, _ := ParseKey(NewKeyText())
	payload := []byte("hb|n1|42")
	sealed := k.SealDatagram(payload)
	if len(sealed) != len(payload)+DatagramTagBytes || !bytes.Equal(payload, []byte("hb|n1|42")) {
		t.Fatalf("sealed %d bytes, payload changed: %q", len(sealed), payload)
	}
	if got, ok := k.OpenDatagram(sealed); !ok || !bytes.Equal(got, payload) {
		t.Fatalf("open: %q %v", got, ok)
	}
	if _, ok := other.OpenDatagram(sealed); ok {
		t.Fatal("another cluster's key opened the datagram")
	}
	for i := range sealed { // any flipped bit, payload or tag, is refused
		bad := append([]byte(nil), sealed...)
		bad[i] ^= 1
		if _, ok := k.OpenDatagram(bad); ok {
			t.Fatalf("byte %d flipped and the datagram still opened", i)
		}
	}
	for _, short := range [][]byte{nil, {}, sealed[:DatagramTagBytes-1]} {
		if _, ok := k.OpenDatagram(short); ok {
			t.Fatalf("a %d-byte packet opened", len(short))
		}
	}
	var none *Key
	if got, ok := none.OpenDatagram(payload); !ok || !bytes.Equal(none.SealDatagram(payload), payload) || !bytes.Equal(got, payload) {
		t.Fatal("without a key datagrams pass as they are")
	}
}
