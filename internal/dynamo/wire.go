package dynamo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/scalelab/scalelab/internal/dynamo/vclock"
)

// Node-to-node messages travel as one binary request and one binary
// response over a Transport (HTTP POST /internal/rpc between processes, a
// function call in an in-process cluster). The encoding is uvarints and
// length-prefixed bytes, and version sets use the store's own encoding, so
// a replica write costs no more than the bytes it carries.
//
// A request is an op byte and its fields. A response is a status byte: 0
// and the result, or 1, an HTTP status and a message (an error the
// coordinator must pass on, e.g. a forwarded write that missed its quorum).

type op byte

const (
	opReplicaPut     op = iota + 1 // key, hintFor, versions → nothing
	opReplicaGet                   // key → versions
	opCoordinate                   // key, context, tombstone, value, w → clock of the new version
	opTree                         // start, end, depth → leaf hashes
	opLeaves                       // start, end, depth, leaf indices → (key, versions)…
	opReplicaPutMany               // count, (key, hintFor, versions)… → nothing
	opIssued                       // key, actor → known, highest counter the actor issued for key
)

// RemoteError is an error a peer answered with (not a transport failure).
type RemoteError struct {
	Status  int
	Message string
}

func (e *RemoteError) Error() string { return fmt.Sprintf("peer answered %d: %s", e.Status, e.Message) }

var errBadMessage = errors.New("dynamo: malformed message")

type encoder struct{ b []byte }

func (e *encoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) bytes(p []byte) {
	e.uint(uint64(len(p)))
	e.b = append(e.b, p...)
}
func (e *encoder) str(s string)                 { e.uint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) versions(vs []vclock.Version) { e.b = vclock.AppendVersions(e.b, vs) }
func (e *encoder) bool(v bool)                  { e.b = append(e.b, map[bool]byte{false: 0, true: 1}[v]) }
func newRequest(o op) *encoder                  { return &encoder{b: []byte{byte(o)}} }
func okResponse() *encoder                      { return &encoder{b: []byte{0}} }
func errorResponse(status int, msg string) []byte {
	e := &encoder{b: []byte{1}}
	e.uint(uint64(status))
	e.str(msg)
	return e.b
}

type decoder struct {
	r   *bytes.Reader
	err error
}

func newDecoder(b []byte) *decoder { return &decoder{r: bytes.NewReader(b)} }

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(d.r)
	if err != nil {
		d.err = errBadMessage
	}
	return v
}

func (d *decoder) bytes(limit int) []byte {
	n := d.uint()
	if d.err != nil || n > uint64(limit) || n > uint64(d.r.Len()) {
		d.err = errBadMessage
		return nil
	}
	p := make([]byte, n)
	_, _ = d.r.Read(p)
	return p
}

func (d *decoder) str(limit int) string { return string(d.bytes(limit)) }

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	c, err := d.r.ReadByte()
	if err != nil || c > 1 {
		d.err = errBadMessage
	}
	return c == 1
}

func (d *decoder) versions() []vclock.Version {
	if d.err != nil {
		return nil
	}
	vs, err := vclock.DecodeVersions(d.r)
	if err != nil {
		d.err = errBadMessage
	}
	return vs
}

// done reports the first error, or trailing bytes.
func (d *decoder) done() error {
	if d.err == nil && d.r.Len() != 0 {
		d.err = errBadMessage
	}
	return d.err
}

// parseResponse splits a response into its decoder or the peer's error.
func parseResponse(raw []byte) (*decoder, error) {
	if len(raw) == 0 {
		return nil, errBadMessage
	}
	d := newDecoder(raw[1:])
	if raw[0] == 0 {
		return d, nil
	}
	status, msg := d.uint(), d.str(1<<16)
	if d.done() != nil {
		return nil, errBadMessage
	}
	return nil, &RemoteError{Status: int(status), Message: msg}
}
