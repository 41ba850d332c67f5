package feed

import (
	"slices"
	"testing"
	"time"
)

func TestCodecRoundTripsAndRefusesDamage(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_123)
	u := User{ID: 1 << 62, Handle: "ann_1", Name: "Ann é", Mode: "pull", Followers: 123456, Following: 7, Posts: 0, CreatedAt: at}
	p := Post{ID: 99, AuthorID: 1 << 61, Body: "hello\nworld ✓", ShareOf: 5, Likes: 3, Comments: 2, Shares: 1, Deleted: true, CreatedAt: at}
	ids := []int64{1, 1 << 62, 3, -4}
	gotU, err := decodeUser(encodeUser(u))
	if err != nil || gotU != u {
		t.Fatalf("user: %+v %v", gotU, err)
	}
	gotP, err := decodePost(encodePost(p))
	if err != nil || gotP != p {
		t.Fatalf("post: %+v %v", gotP, err)
	}
	gotIDs, err := decodeIDs(encodeIDs(ids))
	if err != nil || !slices.Equal(gotIDs, ids) {
		t.Fatalf("ids: %v %v", gotIDs, err)
	}
	if got, err := decodeIDs(encodeIDs(nil)); err != nil || len(got) != 0 {
		t.Fatalf("no ids: %v %v", got, err)
	}
	for _, b := range [][]byte{encodeUser(u), encodePost(p), encodeIDs(ids)} {
		for cut := 0; cut < len(b); cut++ {
			_, e1 := decodeUser(b[:cut])
			_, e2 := decodePost(b[:cut])
			_, e3 := decodeIDs(b[:cut])
			if e1 == nil && e2 == nil && e3 == nil {
				t.Fatalf("a value cut at %d of %d decoded", cut, len(b))
			}
		}
	}
	if _, err := decodeUser(append(encodeUser(u), 0)); err == nil {
		t.Fatal("trailing bytes decoded")
	}
	if _, err := decodeIDs([]byte{codecVersion, 0x80, 0x80, 0x80, 0x80, 0x10}); err == nil {
		t.Fatal("a huge count decoded")
	}
}

func TestCompareWithTruth(t *testing.T) {
	m, d, x := compareWithTruth([]int64{5, 4, 4, 9, 9, 9}, []int64{5, 4, 3})
	if m != 1 || d != 3 || x != 1 {
		t.Fatalf("missing %d duplicated %d extra %d, want 1 3 1", m, d, x)
	}
}
