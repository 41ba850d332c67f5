package snowflake

import "fmt"

const base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// MaxBase62Len is the length of the largest uint64 in base62.
const MaxBase62Len = 11

var base62Index = func() (idx [256]int8) {
	for i := range idx {
		idx[i] = -1
	}
	for i := 0; i < len(base62Alphabet); i++ {
		idx[base62Alphabet[i]] = int8(i)
	}
	return idx
}()

// EncodeBase62 renders n in base62 without padding ("0" for zero).
func EncodeBase62(n uint64) string {
	if n == 0 {
		return "0"
	}
	var buf [MaxBase62Len]byte
	i := len(buf)
	for n > 0 {
		i--
		buf[i] = base62Alphabet[n%62]
		n /= 62
	}
	return string(buf[i:])
}

// DecodeBase62 parses a base62 string produced by EncodeBase62. It rejects
// empty input, foreign characters, leading zeros (so that every number has
// exactly one spelling) and values beyond uint64.
func DecodeBase62(s string) (uint64, error) {
	if len(s) == 0 || len(s) > MaxBase62Len {
		return 0, fmt.Errorf("%w: base62 %q must be 1–%d characters", ErrInvalidID, truncate(s), MaxBase62Len)
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%w: base62 %q has a leading zero", ErrInvalidID, s)
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		d := base62Index[s[i]]
		if d < 0 {
			return 0, fmt.Errorf("%w: %q is not a base62 character", ErrInvalidID, s[i])
		}
		hi := n * 62
		if hi/62 != n || hi+uint64(d) < hi {
			return 0, fmt.Errorf("%w: base62 %q overflows 64 bits", ErrInvalidID, s)
		}
		n = hi + uint64(d)
	}
	return n, nil
}
