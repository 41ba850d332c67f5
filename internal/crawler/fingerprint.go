package crawler

import (
	"crypto/sha256"
	"encoding/hex"
	"math/bits"
	"strings"
)

// ExactHash is a body's identity: equal bodies, equal hashes.
func ExactHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:16])
}

// SimHash is Charikar's fingerprint of a text's word 3-shingles: texts
// that share most shingles get fingerprints a few bits apart, so a
// near-duplicate is a fingerprint within a small Hamming distance
// (Manku, Jain and Das Sarma, WWW 2007: 64 bits, distance ≤ 3 for
// billions of pages). Each shingle's 64-bit hash votes +1 or -1 on every
// bit; the sign of each bit's total is the fingerprint's bit.
//
// A profile of a crawl put the textbook loop (a hash.Hash and two byte
// slices per shingle, then 64 votes) at 40 % of the crawler's CPU, so the
// FNV-1a of a shingle ("w1 w2 w3 ") is computed inline, and the votes are
// counted bit-sliced: planes[p] holds bit p of every position's count of
// ones, and adding a hash is a ripple-carry add across the planes (about
// two word operations a shingle instead of 64). A bit is set when more
// than half the shingles have it: the sign of its votes, as before.
func SimHash(text string) uint64 {
	words := strings.Fields(strings.ToLower(text))
	if len(words) == 0 {
		return 0
	}
	var planes [33]uint64
	n := 0
	shingle := func(ws []string) {
		const offset, prime = 14695981039346656037, 1099511628211
		h := uint64(offset)
		for _, w := range ws {
			for i := 0; i < len(w); i++ {
				h = (h ^ uint64(w[i])) * prime
			}
			h = (h ^ ' ') * prime
		}
		for p := 0; h != 0; p++ {
			carry := planes[p] & h
			planes[p] ^= h
			h = carry
		}
		n++
	}
	if len(words) < 3 {
		shingle(words)
	}
	for i := 0; i+3 <= len(words); i++ {
		shingle(words[i : i+3])
	}
	var fp uint64
	for b := range 64 {
		count := 0
		for p := range planes {
			count |= int(planes[p]>>b&1) << p
		}
		if 2*count > n {
			fp |= 1 << b
		}
	}
	return fp
}

// Distance is the number of bits two fingerprints differ in.
func Distance(a, b uint64) int { return bits.OnesCount64(a ^ b) }

// NearDuplicates finds, for each fingerprint added, an earlier one within
// MaxDistance bits. It splits the 64 bits into MaxDistance+1 blocks and
// keeps a table per block: two fingerprints within k bits agree exactly on
// at least one of k+1 blocks (pigeonhole), so only the fingerprints that
// share a block are compared, not all of them. Pages of a few hundred
// words, one word apart, land 0–8 bits apart (3–4 typically) and
// unrelated pages 25 or more, hence the default of 6.
type NearDuplicates struct {
	MaxDistance int // 1–15; 0 means 6
	tables      []map[uint64][]nearEntry
	shifts      []uint
	masks       []uint64
}

type nearEntry struct {
	fp uint64
	id int64
}

func (n *NearDuplicates) init() {
	k := n.MaxDistance
	if k <= 0 || k > 15 {
		k = 6
	}
	n.MaxDistance = k
	blocks := k + 1
	shift := uint(0)
	for b := 0; b < blocks; b++ {
		width := uint(64 / blocks)
		if b < 64%blocks {
			width++
		}
		n.shifts = append(n.shifts, shift)
		n.masks = append(n.masks, (uint64(1)<<width)-1)
		n.tables = append(n.tables, map[uint64][]nearEntry{})
		shift += width
	}
}

// Add records fp under id and returns the id of an earlier fingerprint
// within MaxDistance (the first found), or 0 and false.
func (n *NearDuplicates) Add(fp uint64, id int64) (int64, bool) {
	if n.tables == nil {
		n.init()
	}
	var found int64
	ok := false
	for i := range n.tables {
		block := (fp >> n.shifts[i]) & n.masks[i]
		if !ok {
			for _, e := range n.tables[i][block] {
				if Distance(e.fp, fp) <= n.MaxDistance {
					found, ok = e.id, true
					break
				}
			}
		}
		n.tables[i][block] = append(n.tables[i][block], nearEntry{fp, id})
	}
	return found, ok
}
