package auth

import (
	"crypto/hmac"
	"crypto/sha256"
)

// Datagrams too small for TLS — heartbeats, probes — are authenticated
// with HMAC-SHA256 under a key of their own derived from the cluster key:
// a packet is its payload followed by a 32-byte tag. A datagram seals no
// secret (the payload travels in the clear) and does not stop a replay of
// a captured packet; a receiver that cares numbers its packets and drops
// a number it has seen (see the failure-detection heartbeats).

// DatagramTagBytes is the length of a sealed datagram's tag.
const DatagramTagBytes = sha256.Size

// SealDatagram returns payload with its tag appended. With no key (nil)
// the payload is returned as it is: loopback only, as for every peer.
func (k *Key) SealDatagram(payload []byte) []byte {
	if k == nil {
		return payload
	}
	m := hmac.New(sha256.New, k.derive("datagram-mac/v1", 32))
	m.Write(payload)
	return m.Sum(append(payload[:len(payload):len(payload)], make([]byte, 0, DatagramTagBytes)...))
}

// OpenDatagram checks a sealed datagram and returns its payload; ok is
// false for a packet that is too short or whose tag is wrong. With no key
// every packet is accepted as it is.
func (k *Key) OpenDatagram(packet []byte) (payload []byte, ok bool) {
	if k == nil {
		return packet, true
	}
	if len(packet) < DatagramTagBytes {
		return nil, false
	}
	payload, tag := packet[:len(packet)-DatagramTagBytes], packet[len(packet)-DatagramTagBytes:]
	m := hmac.New(sha256.New, k.derive("datagram-mac/v1", 32))
	m.Write(payload)
	if !hmac.Equal(m.Sum(nil), tag) {
		return nil, false
	}
	return payload, true
}
