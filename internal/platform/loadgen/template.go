package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Template is a string with placeholders, rendered once per request:
//
//	{{seq}}          the request's sequence number (0, 1, 2, …, across the whole run)
//	{{rand A B}}     a uniform random integer in [A, B]
//	{{uuid}}         a random (version 4) UUID
//	{{value}}        entry seq mod N of the target's Values (IDs made before the run)
//
// A template without placeholders renders to itself, and callers can check
// Static to build the request once.
type Template struct {
	parts  []part
	values []string // for {{value}}
}

type part struct {
	lit    string
	kind   byte // 0 literal, 's' seq, 'r' rand, 'u' uuid, 'v' value
	lo, hi int64
}

// ParseTemplate compiles s, failing on unknown or malformed placeholders.
func ParseTemplate(s string) (Template, error) {
	var t Template
	for len(s) > 0 {
		i := strings.Index(s, "{{")
		if i < 0 {
			t.parts = append(t.parts, part{lit: s})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: s[:i]})
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return Template{}, fmt.Errorf("template: %q has {{ without }}", s)
		}
		p, err := parsePlaceholder(strings.Fields(s[i+2 : i+j]))
		if err != nil {
			return Template{}, err
		}
		t.parts = append(t.parts, p)
		s = s[i+j+2:]
	}
	return t, nil
}

func parsePlaceholder(f []string) (part, error) {
	if len(f) == 0 {
		return part{}, fmt.Errorf("template: empty {{}}")
	}
	switch {
	case f[0] == "seq" && len(f) == 1:
		return part{kind: 's'}, nil
	case f[0] == "uuid" && len(f) == 1:
		return part{kind: 'u'}, nil
	case f[0] == "value" && len(f) == 1:
		return part{kind: 'v'}, nil
	case f[0] == "rand" && len(f) == 3:
		lo, err1 := strconv.ParseInt(f[1], 10, 64)
		hi, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || lo > hi || hi-lo < 0 || hi-lo == math.MaxInt64 {
			return part{}, fmt.Errorf("template: {{rand %s %s}} needs two integers A ≤ B", f[1], f[2])
		}
		return part{kind: 'r', lo: lo, hi: hi}, nil
	}
	return part{}, fmt.Errorf("template: unknown placeholder {{%s}}: want {{seq}}, {{rand A B}}, {{uuid}} or {{value}}", strings.Join(f, " "))
}

// usesValues reports whether the template has a {{value}}.
func (t Template) usesValues() bool {
	for _, p := range t.parts {
		if p.kind == 'v' {
			return true
		}
	}
	return false
}

// withValues returns the template with the list {{value}} draws from.
func (t Template) withValues(values []string) Template {
	t.values = values
	return t
}

// Static reports whether the template has no placeholders.
func (t Template) Static() bool {
	for _, p := range t.parts {
		if p.kind != 0 {
			return false
		}
	}
	return true
}

// AppendTo renders the template for request seq onto dst.
func (t Template) AppendTo(dst []byte, seq uint64, rng *rand.Rand) []byte {
	for _, p := range t.parts {
		switch p.kind {
		case 0:
			dst = append(dst, p.lit...)
		case 's':
			dst = strconv.AppendUint(dst, seq, 10)
		case 'r':
			dst = strconv.AppendInt(dst, p.lo+rng.Int64N(p.hi-p.lo+1), 10)
		case 'u':
			dst = appendUUID(dst, rng)
		case 'v':
			dst = append(dst, t.values[seq%uint64(len(t.values))]...)
		}
	}
	return dst
}

// String renders the template once (for seq 0) — for display.
func (t Template) String() string {
	return string(t.AppendTo(nil, 0, rand.New(rand.NewPCG(1, 2))))
}

func appendUUID(dst []byte, rng *rand.Rand) []byte {
	var b [16]byte
	hi, lo := rng.Uint64(), rng.Uint64()
	for i := 0; i < 8; i++ {
		b[i], b[8+i] = byte(hi>>(8*i)), byte(lo>>(8*i))
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	const hex = "0123456789abcdef"
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hex[c>>4], hex[c&0xf])
	}
	return dst
}
