package feed

import (
	"encoding/binary"
	"errors"
	"time"
)

// The cached users, posts and follow lists are encoded by hand, not as
// JSON: a timeline read decodes one user per followee (twenty, typically)
// and one post per item, and under a 5,000 reads/s load the profile put
// 46 % of the server's CPU in encoding/json for them. This binary form
// (a version byte, then varints and length-prefixed strings) decodes in a
// small fraction of that. A value that does not decode is a cache miss.

const codecVersion = 2

var errCodec = errors.New("feed: cached value does not decode")

type encoder struct{ b []byte }

func (e *encoder) int(v int64) { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}
func (e *encoder) time(t time.Time) { e.int(t.UnixMilli()) }

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCodec
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	if d.err != nil {
		return ""
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || uint64(len(d.b)-k) < n {
		d.err = errCodec
		return ""
	}
	s := string(d.b[k : k+int(n)])
	d.b = d.b[k+int(n):]
	return s
}

func (d *decoder) time() time.Time { return time.UnixMilli(d.int()) }

func newDecoder(b []byte) *decoder {
	if len(b) == 0 || b[0] != codecVersion {
		return &decoder{err: errCodec}
	}
	return &decoder{b: b[1:]}
}

func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errCodec
	}
	return d.err
}

func encodeUser(u User) []byte {
	e := encoder{b: []byte{codecVersion}}
	e.int(u.ID)
	e.str(u.Handle)
	e.str(u.Name)
	e.str(u.Mode)
	e.int(int64(u.Followers))
	e.int(int64(u.Following))
	e.int(int64(u.Posts))
	e.int(int64(u.Liked))
	e.time(u.CreatedAt)
	return e.b
}

func decodeUser(b []byte) (User, error) {
	d := newDecoder(b)
	u := User{ID: d.int(), Handle: d.str(), Name: d.str(), Mode: d.str(),
		Followers: int(d.int()), Following: int(d.int()), Posts: int(d.int()), Liked: int(d.int()), CreatedAt: d.time()}
	return u, d.done()
}

func encodePost(p Post) []byte {
	e := encoder{b: []byte{codecVersion}}
	e.int(p.ID)
	e.int(p.AuthorID)
	e.str(p.Body)
	e.int(p.ShareOf)
	e.int(int64(p.Likes))
	e.int(int64(p.Comments))
	e.int(int64(p.Shares))
	deleted := int64(0)
	if p.Deleted {
		deleted = 1
	}
	e.int(deleted)
	e.time(p.CreatedAt)
	return e.b
}

func decodePost(b []byte) (Post, error) {
	d := newDecoder(b)
	p := Post{ID: d.int(), AuthorID: d.int(), Body: d.str(), ShareOf: d.int(), Likes: int(d.int()),
		Comments: int(d.int()), Shares: int(d.int()), Deleted: d.int() == 1, CreatedAt: d.time()}
	return p, d.done()
}

func encodeIDs(ids []int64) []byte {
	e := encoder{b: make([]byte, 1, 1+4*len(ids))}
	e.b[0] = codecVersion
	e.int(int64(len(ids)))
	for _, id := range ids {
		e.int(id)
	}
	return e.b
}

func decodeIDs(b []byte) ([]int64, error) {
	d := newDecoder(b)
	n := d.int()
	if n < 0 || n > int64(len(b)) {
		return nil, errCodec
	}
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = d.int()
	}
	return ids, d.done()
}

func encodeBrief(b UserBrief) []byte {
	e := encoder{b: []byte{codecVersion}}
	e.int(b.ID)
	e.str(b.Handle)
	e.str(b.Name)
	return e.b
}

func decodeBrief(b []byte) (UserBrief, error) {
	d := newDecoder(b)
	u := UserBrief{ID: d.int(), Handle: d.str(), Name: d.str()}
	return u, d.done()
}
