package vclock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrCorruptVersions is returned for a version set that does not decode.
var ErrCorruptVersions = errors.New("vclock: corrupt version set")

// AppendVersions appends the binary encoding of a version set to b: the
// count, then per version the dot (node, counter, time), the length-
// prefixed context, a tombstone flag and the length-prefixed value. It is
// both the storage format and the wire format between nodes.
func AppendVersions(b []byte, vs []Version) []byte {
	b = binary.AppendUvarint(b, uint64(len(vs)))
	for _, v := range vs {
		b = binary.AppendUvarint(b, uint64(len(v.Dot.Node)))
		b = append(b, v.Dot.Node...)
		b = binary.AppendUvarint(b, v.Dot.Counter)
		b = binary.AppendUvarint(b, uint64(v.Dot.At))
		c := v.Context.MarshalBinary()
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
		if v.Tombstone {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		b = binary.AppendUvarint(b, uint64(len(v.Value)))
		b = append(b, v.Value...)
	}
	return b
}

// DecodeVersions reads one version set from r (AppendVersions' format).
func DecodeVersions(r *bytes.Reader) ([]Version, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil || n > 1<<16 {
		return nil, ErrCorruptVersions
	}
	out := make([]Version, 0, min(n, 64))
	for i := uint64(0); i < n; i++ {
		node, err := readBytes(r, 256)
		if err != nil || len(node) == 0 {
			return nil, ErrCorruptVersions
		}
		ctr, err1 := binary.ReadUvarint(r)
		at, err2 := binary.ReadUvarint(r)
		if err1 != nil || err2 != nil || at > 1<<62 {
			return nil, ErrCorruptVersions
		}
		cb, err := readBytes(r, 1<<20)
		if err != nil {
			return nil, ErrCorruptVersions
		}
		ctx, err := Unmarshal(cb)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorruptVersions, err)
		}
		flag, err := r.ReadByte()
		if err != nil || flag > 1 {
			return nil, ErrCorruptVersions
		}
		val, err := readBytes(r, 1<<31)
		if err != nil {
			return nil, ErrCorruptVersions
		}
		out = append(out, Version{Dot: Entry{Node: string(node), Counter: ctr, At: int64(at)}, Context: ctx, Value: val, Tombstone: flag == 1})
	}
	return out, nil
}

// UnmarshalVersions decodes a whole buffer holding one version set.
func UnmarshalVersions(raw []byte) ([]Version, error) {
	r := bytes.NewReader(raw)
	vs, err := DecodeVersions(r)
	if err != nil {
		return nil, err
	}
	if r.Len() != 0 {
		return nil, ErrCorruptVersions
	}
	return vs, nil
}

// readBytes reads a uvarint length (at most limit) and that many bytes.
func readBytes(r *bytes.Reader, limit uint64) ([]byte, error) {
	l, err := binary.ReadUvarint(r)
	if err != nil || l > limit || l > uint64(r.Len()) {
		return nil, ErrCorruptVersions
	}
	b := make([]byte, l)
	_, _ = r.Read(b)
	return b, nil
}
